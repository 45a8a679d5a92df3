//! The SBOMs of a Windows image: the documents [`crate::sbom`] writes for any OS (the release
//! as the operating system, each program as a component with a generic package URL), with
//! what only Windows has: the release's CPE, the programs' publishers, and the installed
//! updates (KBs) as components of their own.

use serde_json::{Value, json};

use super::Inventory;
use crate::sbom::{Subject, enc};

/// An installed update's package URL (`pkg:generic/microsoft/KB5044281@20348.2849.1.15`).
pub fn update_purl(kb: &str, version: &str) -> String {
    let mut purl = format!("pkg:generic/microsoft/{}", enc(kb));
    if !version.is_empty() {
        purl.push_str(&format!("@{}", enc(version)));
    }
    purl
}

pub fn cyclonedx(subject: &Subject<'_>, inv: &Inventory) -> Value {
    let (os, packages) = inv.as_os_and_packages();
    let mut doc = crate::sbom::cyclonedx(subject, &os, &packages);
    let Some(components) = doc["components"].as_array_mut() else {
        return doc;
    };
    for c in components.iter_mut() {
        if c["type"] == "operating-system" {
            c["name"] = json!(inv.os.product_name);
            if let Some(cpe) = &inv.os.cpe {
                c["cpe"] = json!(cpe);
            }
        }
    }
    // Programs follow the OS, in the inventory's order.
    for (c, p) in components.iter_mut().skip(1).zip(&inv.programs) {
        c["type"] = json!("application");
        if !p.publisher.is_empty() {
            c["publisher"] = json!(p.publisher);
        }
    }
    let mut refs = Vec::new();
    for u in &inv.updates {
        let purl = update_purl(&u.kb, &u.version);
        refs.push(json!(purl));
        components.push(json!({
            "type": "application", "bom-ref": purl, "name": u.kb, "version": u.version,
            "publisher": "Microsoft Corporation", "purl": purl,
            "description": format!("installed update, servicing package {}", u.package),
        }));
    }
    if let Some(deps) = doc["dependencies"][0]["dependsOn"].as_array_mut() {
        deps.extend(refs);
    }
    doc
}

pub fn spdx(subject: &Subject<'_>, inv: &Inventory) -> Value {
    let (os, packages) = inv.as_os_and_packages();
    let mut doc = crate::sbom::spdx(subject, &os, &packages);
    let mut extra = Vec::new();
    let mut os_package = json!({
        "name": inv.os.product_name, "SPDXID": "SPDXRef-OperatingSystem", "versionInfo": inv.os.build,
        "supplier": "Organization: Microsoft Corporation", "downloadLocation": "NOASSERTION",
        "filesAnalyzed": false, "primaryPackagePurpose": "OPERATING_SYSTEM",
    });
    if let Some(cpe) = &inv.os.cpe {
        os_package["externalRefs"] = json!([{
            "referenceCategory": "SECURITY", "referenceType": "cpe23Type", "referenceLocator": cpe,
        }]);
    }
    extra.push(os_package);
    for (i, u) in inv.updates.iter().enumerate() {
        extra.push(json!({
            "name": u.kb, "SPDXID": format!("SPDXRef-Update-{i}-{}", u.kb), "versionInfo": u.version,
            "supplier": "Organization: Microsoft Corporation", "downloadLocation": "NOASSERTION",
            "filesAnalyzed": false, "primaryPackagePurpose": "INSTALL",
            "comment": format!("installed update, servicing package {}", u.package),
            "externalRefs": [{
                "referenceCategory": "PACKAGE-MANAGER", "referenceType": "purl",
                "referenceLocator": update_purl(&u.kb, &u.version),
            }],
        }));
    }
    if let Some(list) = doc["packages"].as_array_mut() {
        // Programs follow the image, in the inventory's order.
        for (p, program) in list.iter_mut().skip(1).zip(&inv.programs) {
            if !program.publisher.is_empty() {
                p["supplier"] = json!(format!("Organization: {}", program.publisher));
            }
            p["primaryPackagePurpose"] = json!("APPLICATION");
            if let Some(o) = p.as_object_mut() {
                o.remove("sourceInfo");
            }
        }
        for e in &extra {
            list.push(e.clone());
        }
    }
    if let Some(rels) = doc["relationships"].as_array_mut() {
        for e in &extra {
            rels.push(json!({
                "spdxElementId": "SPDXRef-Image", "relationshipType": "CONTAINS",
                "relatedSpdxElement": e["SPDXID"],
            }));
        }
    }
    doc
}
