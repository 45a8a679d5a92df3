//! The shared library of the imagepipe steps.
//!
//! Organised by domain: the pipeline definition ([`config`]), images and tags ([`image`]), the
//! image record ([`record`]), artifact stores ([`store`]), Packer ([`packer`]) and building with
//! it ([`build`]), and the contract every step binary follows ([`step`], [`env`], [`http`],
//! [`secret`]).

pub mod build;
pub mod config;
pub mod endpoint;
pub mod env;
pub mod fsutil;
pub mod git;
pub mod github;
pub mod hash;
pub mod http;
pub mod image;
pub mod import;
pub mod library;
pub mod ova;
pub mod packer;
pub mod publish;
pub mod record;
pub mod replicate;
pub mod scan;
pub mod secret;
pub mod severity;
pub mod step;
pub mod store;
pub mod tag;
pub mod versioning;
