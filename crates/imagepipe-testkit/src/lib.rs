//! imagepipe's test support, one crate for every test and benchmark of the workspace (a
//! dev-dependency, never published).
//!
//! | module | what it gives a test |
//! | --- | --- |
//! | [`server`] | an axum app on a loopback port, the base of every test server below |
//! | [`artifactory`] | an Artifactory REST server for one generic repository, as JFrog documents it |
//! | [`github`] | a GitHub REST server: the endpoints imagepipe uses, as GitHub documents them |
//! | [`vsphere_api`] | a vCenter content library server speaking the `/api` generation |
//! | [`vcsim`] | govmomi's vCenter simulator, the real `/rest` and SOAP peer |
//! | [`registry`] | Debian's `docker-registry`, the real OCI peer |
//! | [`tls_proxy`] | a TLS front with a private CA for any of the servers |
//! | [`echo`] | a server that refuses every request and echoes it, as some proxies do |
//! | [`built`] | build outputs and records, as `imagepipe-build` writes them |
//! | [`images`], [`dpkg`], [`rpmdb`], [`rhel`], [`ndb_writer`], [`windows`] | disk images, package databases and registry hives made by the real tools |
//! | [`osv_oracle`] | an independent OSV evaluator, written from the schema alone |
//! | [`repo`] | a throwaway pipeline repository and the git calls tests make in it |
//! | [`step`] | running a step binary as CI does, and checking its `action.yml` |
//! | [`groovy`] | the Jenkins shared library's harness |
//! | [`bench`] | the benchmarks' timing and scratch space |
//!
//! The test servers share one style: each is an axum app on [`server::serve`], keeps its state
//! behind one mutex, answers with the vendor's documented status codes and error bodies (each
//! cites its page), and lets a test inject faults and read back what was asked of it.

// Test support fails loudly, as the tests that use it do: a setup that cannot be made is a
// broken test, not an input to handle.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

pub mod artifactory;
pub mod bench;
pub mod browser;
pub mod built;
pub mod dpkg;
pub mod echo;
pub mod github;
pub mod groovy;
pub mod images;
pub mod ndb_writer;
pub mod osv_oracle;
pub mod registry;
pub mod repo;
pub mod rhel;
pub mod rpmdb;
pub mod server;
pub mod step;
pub mod tls_proxy;
pub mod vcsim;
pub mod vsphere_api;
pub mod windows;
