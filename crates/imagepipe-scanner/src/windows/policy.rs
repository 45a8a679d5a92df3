//! The Windows checks of the hardening policy, read from the image's registry hives: a
//! setting's effective value (the Group Policy key before the setting's own, as Windows reads
//! them), a local account's state from the SAM hive, and automatic logon with a stored
//! password. Details never quote a secret.

use super::Hives;
use crate::inventory::InventoryError;

/// `(passed, detail)` of a `registry` rule: the first of `values` (`HKLM\…\Key\ValueName`) that
/// is set decides; when none is, `default` (Windows' own behaviour) does, and without one the
/// rule fails.
pub fn registry(
    hives: &Hives,
    values: &[String],
    expect: &str,
    default: Option<&str>,
) -> Result<(bool, String), InventoryError> {
    for full in values {
        let (key, name) = full.rsplit_once('\\').unwrap_or(("", full));
        if let Some(value) = hives.text(key, name)? {
            return Ok(if value.eq_ignore_ascii_case(expect) {
                (true, String::new())
            } else {
                (
                    false,
                    format!("{full} is {}, not `{expect}`", shown(name, &value)),
                )
            });
        }
    }
    let names = values.join(", ");
    Ok(match default {
        Some(d) if d.eq_ignore_ascii_case(expect) => (true, String::new()),
        Some(d) => (
            false,
            format!("{names}: not set, and Windows' default `{d}` is not `{expect}`"),
        ),
        None => (false, format!("{names}: not set (`{expect}` required)")),
    })
}

/// A registry value as a report may show it: reports are published (SARIF, JUnit, summaries),
/// so a value whose name suggests a secret is never quoted, and a long one is cut.
fn shown(name: &str, value: &str) -> String {
    let lower = name.to_ascii_lowercase();
    if ["password", "secret", "key", "token", "credential"]
        .iter()
        .any(|w| lower.contains(w))
    {
        return "set (its value is not shown)".into();
    }
    let mut cut: String = value.chars().take(80).collect();
    if cut.len() < value.len() {
        cut.push('…');
    }
    format!("`{cut}`")
}

/// `(passed, detail)` of an account rule: the local account with relative id `rid` is
/// disabled, or does not exist. The account control bits are the 16-bit word at offset 0x38
/// of the account's `F` value; 0x0001 is "account disabled" (Samba's `ACB_DISABLED`,
/// `librpc/idl/samr.idl`; read the same way by RegRipper's `samparse`).
pub fn account_disabled(hives: &Hives, rid: u32) -> Result<(bool, String), InventoryError> {
    let key_path = format!("HKLM\\SAM\\SAM\\Domains\\Account\\Users\\{rid:08X}");
    if hives.sam.is_none() {
        return Ok((false, "the SAM hive is not on the image".into()));
    }
    let Some(key) = hives.key(&key_path)? else {
        return Ok((true, String::new()));
    };
    let f = key
        .value("F")
        .map_err(|e| InventoryError::Bad {
            file: key_path.clone(),
            message: e.to_string(),
        })?
        .map(|v| v.data.to_vec());
    let Some(acb) = f
        .as_deref()
        .and_then(|f| f.get(0x38..0x3a))
        .map(|b| u16::from_le_bytes([b[0], b[1]]))
    else {
        return Ok((
            false,
            format!("{key_path}: no account control bits (F value)"),
        ));
    };
    Ok(if acb & 0x0001 != 0 {
        (true, String::new())
    } else {
        (
            false,
            format!("the account with RID {rid} is enabled (account control bits {acb:#06x})"),
        )
    })
}

const WINLOGON: &str = "HKLM\\SOFTWARE\\Microsoft\\Windows NT\\CurrentVersion\\Winlogon";

/// `(passed, detail)` of the automatic logon rule: fails when `AutoAdminLogon` is `1` and a
/// password is stored for it, in Winlogon's `DefaultPassword` value (clear text) or as the LSA
/// secret `DefaultPassword` (`HKLM\SECURITY\Policy\Secrets\DefaultPassword`).
pub fn autologon(hives: &Hives) -> Result<(bool, String), InventoryError> {
    let on = hives
        .text(WINLOGON, "AutoAdminLogon")?
        .is_some_and(|v| v.trim() == "1");
    if !on {
        return Ok((true, String::new()));
    }
    let mut stored = Vec::new();
    if hives
        .text(WINLOGON, "DefaultPassword")?
        .is_some_and(|p| !p.is_empty())
    {
        stored.push("in clear text in Winlogon's DefaultPassword value");
    }
    if hives
        .key("HKLM\\SECURITY\\Policy\\Secrets\\DefaultPassword")?
        .is_some()
    {
        stored.push("as the LSA secret DefaultPassword");
    }
    Ok(if stored.is_empty() {
        (true, String::new())
    } else {
        (
            false,
            format!(
                "AutoAdminLogon is 1 and the password is stored {} (not shown)",
                stored.join(" and ")
            ),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_not_quoted_and_long_values_are_cut() {
        assert_eq!(
            shown("DefaultPassword", "hunter2"),
            "set (its value is not shown)"
        );
        assert_eq!(shown("EnableFirewall", "0"), "`0`");
        let long = "x".repeat(200);
        assert_eq!(shown("Banner", &long), format!("`{}…`", "x".repeat(80)));
    }
}
