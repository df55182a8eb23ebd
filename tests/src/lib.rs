//! End-to-end test support: real servers on free ports of 127.0.0.1.
//!
//! [`servers::Moto`] (S3) and [`servers::Azurite`] (Azure Blob) start their server in
//! `start()`, wait until it accepts connections and kill it when dropped; so do
//! [`databases::Postgres`] and [`databases::MariaDb`], which also create sample databases and
//! checksum them ([`databases::DatabaseServer`]). When a server program is missing, `start()`
//! returns `None` after printing a loud `SKIPPED` line, unless `STOWAWAY_REQUIRE_SERVERS` is
//! set (CI sets it), in which case it panics. Install the servers with
//! `bash scripts/servers.sh install`.

pub mod databases;
pub mod servers;
