//! Software bills of materials of a scanned image: CycloneDX 1.5 JSON and SPDX 2.3 JSON, with
//! a package URL for every package and the image as the described component.

use serde_json::{Value, json};

use super::inventory::{Os, Package};
use super::version::Scheme;

/// Percent-encodes a package URL component: everything but unreserved characters.
pub(crate) fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b".-_~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// The package URL of an installed package (<https://github.com/package-url/purl-spec>).
pub fn purl(os: &Os, p: &Package) -> String {
    if p.scheme == Scheme::Windows {
        // No package type fits a Windows program: the generic type, by name and version.
        let mut purl = format!("pkg:generic/{}@{}", enc(&p.name), enc(&p.version));
        if !p.arch.is_empty() {
            purl.push_str(&format!("?arch={}", enc(&p.arch)));
        }
        return purl;
    }
    let (kind, distro) = match p.scheme {
        Scheme::Windows => ("generic", String::new()),
        Scheme::Dpkg => ("deb", format!("{}-{}", os.id, os.version_id)),
        Scheme::Apk => ("apk", os.version_id.clone()),
        Scheme::Rpm => ("rpm", format!("{}-{}", os.id, os.version_id)),
    };
    let mut q = Vec::new();
    if !p.arch.is_empty() {
        q.push(format!("arch={}", enc(&p.arch)));
    }
    // The rpm purl type carries the epoch as a qualifier, not in the version.
    let mut version = p.version.as_str();
    if p.scheme == Scheme::Rpm
        && let Some((epoch, vr)) = version.split_once(':')
    {
        q.push(format!("epoch={}", enc(epoch)));
        version = vr;
    }
    q.push(format!("distro={}", enc(&distro)));
    if p.source != p.name {
        q.push(format!("upstream={}", enc(&p.source)));
    }
    format!(
        "pkg:{kind}/{}/{}@{}?{}",
        enc(&os.id),
        enc(&p.name),
        enc(version),
        q.join("&")
    )
}

/// The image being described.
#[derive(Debug, Clone)]
pub struct Subject<'a> {
    pub name: &'a str,
    pub version: &'a str,
    pub file: &'a str,
    /// The image file's digest; none for a root filesystem directory.
    pub sha256: Option<&'a str>,
}

pub fn cyclonedx(subject: &Subject<'_>, os: &Os, packages: &[Package]) -> Value {
    let os_ref = format!("os:{}@{}", os.id, os.version_id);
    let components: Vec<Value> = std::iter::once(json!({
        "type": "operating-system", "bom-ref": os_ref, "name": os.id, "version": os.version_id,
        "description": os.pretty_name,
    }))
    .chain(packages.iter().map(|p| {
        let purl = purl(os, p);
        json!({ "type": "library", "bom-ref": purl, "name": p.name, "version": p.version, "purl": purl })
    }))
    .collect();
    let mut component = json!({
        "type": "file", "bom-ref": "image", "name": subject.name, "version": subject.version,
        "description": subject.file,
    });
    if let Some(sha256) = subject.sha256 {
        component["hashes"] = json!([{ "alg": "SHA-256", "content": sha256 }]);
    }
    json!({
        "bomFormat": "CycloneDX",
        "specVersion": "1.5",
        "serialNumber": format!("urn:uuid:{}", uuid::Uuid::new_v4()),
        "version": 1,
        "metadata": {
            "timestamp": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            "tools": { "components": [{ "type": "application", "name": "imagepipe-scan", "version": env!("CARGO_PKG_VERSION") }] },
            "component": component,
        },
        "components": components,
        "dependencies": [
            { "ref": "image", "dependsOn": components.iter().filter_map(|c| c["bom-ref"].as_str()).collect::<Vec<_>>() },
        ],
    })
}

pub fn spdx(subject: &Subject<'_>, os: &Os, packages: &[Package]) -> Value {
    let id = |s: &str| -> String {
        s.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                    c
                } else {
                    '-'
                }
            })
            .collect()
    };
    let image_id = "SPDXRef-Image".to_string();
    let mut image = json!({
        "name": subject.name, "SPDXID": image_id, "versionInfo": subject.version,
        "packageFileName": subject.file, "downloadLocation": "NOASSERTION", "filesAnalyzed": false,
        "primaryPackagePurpose": "OPERATING_SYSTEM",
    });
    if let Some(sha256) = subject.sha256 {
        image["checksums"] = json!([{ "algorithm": "SHA256", "checksumValue": sha256 }]);
    }
    let mut spdx_packages = vec![image];
    let mut relationships = vec![json!({
        "spdxElementId": "SPDXRef-DOCUMENT", "relationshipType": "DESCRIBES", "relatedSpdxElement": image_id,
    })];
    for (i, p) in packages.iter().enumerate() {
        let pid = format!("SPDXRef-Package-{i}-{}", id(&p.name));
        spdx_packages.push(json!({
            "name": p.name, "SPDXID": pid, "versionInfo": p.version, "downloadLocation": "NOASSERTION",
            "filesAnalyzed": false, "sourceInfo": format!("built from source package {} {}", p.source, p.source_version),
            "externalRefs": [{ "referenceCategory": "PACKAGE-MANAGER", "referenceType": "purl", "referenceLocator": purl(os, p) }],
        }));
        relationships.push(json!({
            "spdxElementId": image_id, "relationshipType": "CONTAINS", "relatedSpdxElement": pid,
        }));
    }
    json!({
        "spdxVersion": "SPDX-2.3",
        "dataLicense": "CC0-1.0",
        "SPDXID": "SPDXRef-DOCUMENT",
        "name": format!("{} {}", subject.name, subject.version),
        "documentNamespace": format!("https://imagepipe.dev/spdx/{}/{}/{}", subject.name, subject.version, uuid::Uuid::new_v4()),
        "creationInfo": {
            "created": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            "creators": [format!("Tool: imagepipe-scan-{}", env!("CARGO_PKG_VERSION"))],
        },
        "packages": spdx_packages,
        "relationships": relationships,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn purls() {
        let debian = Os {
            id: "debian".into(),
            version_id: "12".into(),
            ..Os::default()
        };
        let p = Package {
            name: "libssl3".into(),
            version: "3.0.11-1~deb12u2".into(),
            arch: "amd64".into(),
            source: "openssl".into(),
            source_version: "3.0.11-1~deb12u2".into(),
            modularity_label: None,
            scheme: Scheme::Dpkg,
        };
        assert_eq!(
            purl(&debian, &p),
            "pkg:deb/debian/libssl3@3.0.11-1~deb12u2?arch=amd64&distro=debian-12&upstream=openssl"
        );
        let epoch = Package {
            version: "1:9.2p1-2".into(),
            ..p
        };
        assert!(purl(&debian, &epoch).contains("@1%3A9.2p1-2?"));
        let rocky = Os {
            id: "rocky".into(),
            version_id: "9".into(),
            ..Os::default()
        };
        let rpm = Package {
            name: "openssl".into(),
            version: "1:3.0.7-16.el9".into(),
            arch: "x86_64".into(),
            source: "openssl".into(),
            source_version: "1:3.0.7-16.el9".into(),
            modularity_label: None,
            scheme: Scheme::Rpm,
        };
        assert_eq!(
            purl(&rocky, &rpm),
            "pkg:rpm/rocky/openssl@3.0.7-16.el9?arch=x86_64&epoch=1&distro=rocky-9"
        );
    }
}
