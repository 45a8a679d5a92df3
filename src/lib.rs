//! The shared library of the imagepipe steps, in layers; a module uses only those of the layers
//! above it, so there are no import loops:
//!
//! 1. **Base:** the environment variables ([`env`](mod@env)), image names and tags ([`image`]), files
//!    ([`fsutil`]), secrets and credentials ([`secret`]), severities ([`severity`]), digests
//!    ([`hash`]), the image record ([`record`]), version bumps ([`versioning`]), the one HTTP
//!    client factory with its TLS rules ([`http`]), endpoint addresses ([`endpoint`]), and the
//!    pipeline definition ([`config`]).
//! 2. **Parts:** artifact stores ([`store`]), OVA packages ([`ova`]), content libraries
//!    ([`library`]), git ([`git`]), the GitHub API ([`github`]) and Packer ([`packer`]).
//! 3. **Orchestration:** what each step does ([`build`], [`tag`], [`publish`], [`replicate`],
//!    [`import`]), and the life of published versions ([`lifecycle`]: channels, revocation,
//!    pruning, retention).
//! 4. **The step contract** ([`step`]): flags, outputs, summaries and exit codes, used by the
//!    binaries and by orchestration that reports to a person.
//!
//! Scanning lives in its own crate, `imagepipe-scanner`, so that only `imagepipe-scan` links its
//! dependencies.

pub mod build;
pub mod config;
pub mod endpoint;
pub mod env;
pub mod fleet;
pub mod format;
pub mod fsutil;
pub mod git;
pub mod github;
pub mod hash;
pub mod http;
pub mod image;
pub mod import;
pub mod library;
pub mod lifecycle;
pub mod ova;
pub mod packer;
pub mod publish;
pub mod record;
pub mod replicate;
pub mod secret;
pub mod severity;
pub mod step;
pub mod store;
pub mod tag;
pub mod versioning;
