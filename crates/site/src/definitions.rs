//! Cohort definitions stored once, by content: `DIR/definitions/SHA256.json` (compact JSON,
//! 0600). Whatever refers to a definition (a job waiting for the steward) keeps its digest, so
//! a definition asked for N times is stored once, and a stored file whose content does not match
//! its digest is an error, never another definition.

use std::path::PathBuf;

use anyhow::{bail, Context};

use crate::data::{hex_encode, write_atomic, SiteDir};
use sha2::{Digest, Sha256};

/// The digest identifying a definition.
pub fn digest(definition: &serde_json::Value) -> String {
    hex_encode(&Sha256::digest(definition.to_string().as_bytes()))
}

fn path(dir: &SiteDir, digest: &str) -> anyhow::Result<PathBuf> {
    if digest.len() != 64 || !digest.bytes().all(|c| c.is_ascii_hexdigit()) {
        bail!("{digest:?} is not a sha256 digest");
    }
    Ok(dir
        .root()
        .join("definitions")
        .join(format!("{digest}.json")))
}

/// Stores `definition` unless a definition with its digest is stored already; its digest.
pub fn put(dir: &SiteDir, definition: &serde_json::Value) -> anyhow::Result<String> {
    let digest = digest(definition);
    let path = path(dir, &digest)?;
    if !path.exists() {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
        }
        write_atomic(&path, definition.to_string().as_bytes())?;
    }
    Ok(digest)
}

/// The stored definition with `digest`, checked against it.
pub fn get(dir: &SiteDir, digest: &str) -> anyhow::Result<serde_json::Value> {
    let path = path(dir, digest)?;
    let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
    let value: serde_json::Value =
        serde_json::from_slice(&bytes).with_context(|| format!("{}: not JSON", path.display()))?;
    if self::digest(&value) != digest {
        bail!("{}: its content does not match its digest", path.display());
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_definition_is_stored_once_and_checked_on_reading() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = SiteDir::create(tmp.path().join("site")).unwrap();
        let def = serde_json::json!({"PrimaryCriteria": {"CriteriaList": []}, "name": "x"});
        let a = put(&dir, &def).unwrap();
        let b = put(&dir, &def).unwrap();
        assert_eq!(a, b);
        let files = std::fs::read_dir(dir.root().join("definitions"))
            .unwrap()
            .count();
        assert_eq!(files, 1);
        assert_eq!(get(&dir, &a).unwrap(), def);
        // Rewritten behind the site's back: refused.
        std::fs::write(path(&dir, &a).unwrap(), br#"{"name": "y"}"#).unwrap();
        assert!(get(&dir, &a)
            .unwrap_err()
            .to_string()
            .contains("does not match"));
        assert!(get(&dir, "../../etc/passwd").is_err());
    }
}
