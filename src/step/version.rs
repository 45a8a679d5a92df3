//! Naming the image version a step works on after the build: a record, an image and version,
//! or a git tag (as CD gets it). Shared by every step that follows `imagepipe-build`.

use std::path::PathBuf;

use crate::config::{Config, ConfigError};
use crate::env;
use crate::image::{ImageRef, TagError};
use crate::record::{self, Record, RecordError};

#[derive(Debug, Clone, clap::Args)]
pub struct VersionArgs {
    /// The image record (artifacts are found relative to it).
    #[arg(long, env = env::RECORD, value_name = "FILE", conflicts_with_all = ["image", "tag"])]
    pub record: Option<PathBuf>,

    /// Image name; its build output is in <pipeline.output_dir>/<image>/<version>.
    #[arg(long, env = env::IMAGE, value_name = "NAME", requires = "version", conflicts_with = "tag")]
    pub image: Option<String>,

    /// Image version, with --image.
    #[arg(long, env = env::VERSION, value_name = "X.Y.Z")]
    pub version: Option<String>,

    /// Git tag naming image and version, e.g. global/debian-12/v1.4.0.
    #[arg(long, env = env::TAG, value_name = "TAG")]
    pub tag: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum LocateError {
    #[error("say which image version: --record FILE, --image NAME --version X.Y.Z, or --tag TAG")]
    Unnamed,
    #[error("--version `{0}` is not a semantic version like 1.4.0")]
    BadVersion(String),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Tag(#[from] TagError),
    #[error(transparent)]
    Record(#[from] RecordError),
}

impl VersionArgs {
    /// The version named and the path of its local record (which need not exist).
    pub fn locate(&self, config: &Config) -> Result<(ImageRef, PathBuf), LocateError> {
        let id = match (&self.record, &self.image, &self.version, &self.tag) {
            (Some(path), ..) => return Ok((Record::read(path)?.record.id(), path.clone())),
            (None, Some(image), Some(version), None) => {
                let v = version.trim_start_matches('v');
                ImageRef {
                    name: config.image(image)?.name.clone(),
                    version: v
                        .parse()
                        .map_err(|_| LocateError::BadVersion(version.clone()))?,
                }
            }
            (None, None, None, Some(tag)) => {
                let r = config.tag_format.parse_tag(tag)?;
                config.image(r.name.as_str())?;
                r
            }
            _ => return Err(LocateError::Unnamed),
        };
        let path = config
            .output_dir
            .join(id.name.as_str())
            .join(id.version.to_string())
            .join(record::FILE_NAME);
        Ok((id, path))
    }
}
