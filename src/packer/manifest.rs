//! The manifest post-processor's file.
//! <https://developer.hashicorp.com/packer/docs/post-processors/manifest>
//!
//! The post-processor appends to an existing file, so a manifest holds builds of earlier runs
//! too; only those of `last_run_uuid` belong to this build.

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct Manifest {
    #[serde(default)]
    pub builds: Vec<ManifestBuild>,
    #[serde(default)]
    pub last_run_uuid: String,
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct ManifestBuild {
    pub name: String,
    pub builder_type: String,
    #[serde(default)]
    pub build_time: i64,
    /// `null` for builders without files.
    #[serde(default)]
    pub files: Option<Vec<ManifestFile>>,
    #[serde(default)]
    pub artifact_id: String,
    #[serde(default)]
    pub packer_run_uuid: String,
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct ManifestFile {
    pub name: String,
    #[serde(default)]
    pub size: u64,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ManifestError {
    #[error("the Packer manifest is not valid JSON of the manifest post-processor: {0}")]
    Json(String),
    #[error(
        "the Packer manifest has no `last_run_uuid`; is it written by the manifest post-processor?"
    )]
    NoRunId,
    #[error("the Packer manifest has no build of the last run ({0})")]
    NoBuilds(String),
}

impl Manifest {
    pub fn parse(bytes: &[u8]) -> Result<Self, ManifestError> {
        serde_json::from_slice(bytes).map_err(|e| ManifestError::Json(e.to_string()))
    }

    /// The builds of the last run, in the order Packer finished them.
    pub fn last_run(&self) -> Result<Vec<&ManifestBuild>, ManifestError> {
        if self.last_run_uuid.is_empty() {
            return Err(ManifestError::NoRunId);
        }
        let builds: Vec<_> = self
            .builds
            .iter()
            .filter(|b| b.packer_run_uuid == self.last_run_uuid)
            .collect();
        if builds.is_empty() {
            return Err(ManifestError::NoBuilds(self.last_run_uuid.clone()));
        }
        Ok(builds)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_last_run() {
        let m = Manifest::parse(
            br#"{"builds":[
              {"name":"disk","builder_type":"file","build_time":1,"files":[{"name":"old.raw","size":1}],"artifact_id":"File","packer_run_uuid":"r1","custom_data":null},
              {"name":"disk","builder_type":"file","build_time":2,"files":[{"name":"new.raw","size":2}],"artifact_id":"File","packer_run_uuid":"r2","custom_data":null},
              {"name":"ami","builder_type":"amazon-ebs","build_time":2,"files":null,"artifact_id":"us-east-1:ami-0abc","packer_run_uuid":"r2","custom_data":{"a":"b"}}
            ],"last_run_uuid":"r2"}"#,
        )
        .unwrap();
        let last = m.last_run().unwrap();
        assert_eq!(last.len(), 2);
        assert_eq!(last[0].files.as_ref().unwrap()[0].name, "new.raw");
        assert_eq!(last[1].files, None);
        assert_eq!(
            Manifest::parse(br#"{"builds":[],"last_run_uuid":"x"}"#)
                .unwrap()
                .last_run(),
            Err(ManifestError::NoBuilds("x".into()))
        );
        assert_eq!(
            Manifest::parse(br#"{"builds":[]}"#).unwrap().last_run(),
            Err(ManifestError::NoRunId)
        );
        assert!(Manifest::parse(b"[1,2]").is_err());
    }
}
