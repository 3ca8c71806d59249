//! Repository locations: parsing the `-r/--repo` string and opening the
//! backend it names.
//!
//! | form | storage |
//! | --- | --- |
//! | `PATH`, `local:PATH` | a local directory |
//! | `s3:https://HOST[:PORT]/BUCKET[/PREFIX]` (or `http://`) | an S3-compatible service at that endpoint |
//! | `s3:HOST/BUCKET[/PREFIX]` | the same over HTTPS (`s3.amazonaws.com`: AWS, endpoint from the region) |
//! | `s3:BUCKET[/PREFIX]` | AWS, or the endpoint in `AWS_ENDPOINT_URL` |
//! | `sftp:[USER@]HOST:/PATH` | SFTP through the system's `ssh` (its config and keys) |
//! | `sftp://[USER@]HOST[:PORT]/PATH` | the same, with a port; PATH is absolute |
//! | `opendal:SERVICE` | any OpenDAL service compiled in, configured with `-o key=value` |
//!
//! S3 credentials come from `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`
//! (and `AWS_SESSION_TOKEN`), the shared AWS config or the instance
//! metadata; the region from `AWS_DEFAULT_REGION` or `AWS_REGION`
//! (default `us-east-1`). `-o key=value` options are passed to the OpenDAL
//! service and override what the URL says (e.g. `-o region=eu-west-1`,
//! `-o enable_virtual_host_style=true`, `-o key=/path/to/ssh-key`,
//! `-o known_hosts_strategy=accept`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use opendal::Operator;

use super::faulty::FaultConfig;
use super::opendal::{describe, RemoteOptions};
use super::{Backend, OpendalBackend};
use crate::error::{Error, Result};

/// The OpenDAL services compiled into this build. Others need the
/// matching `services-*` feature of the `opendal` crate.
pub const SERVICES: &[&str] = &["fs", "s3", "sftp", "memory"];

/// A parsed repository location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    Local(PathBuf),
    S3 {
        /// `scheme://host[:port]`, or `None` for AWS's regional endpoint
        /// (or `AWS_ENDPOINT_URL`).
        endpoint: Option<String>,
        bucket: String,
        /// Path inside the bucket, without leading or trailing `/`.
        prefix: String,
    },
    Sftp {
        user: Option<String>,
        host: String,
        port: Option<u16>,
        /// Absolute path on the server.
        path: String,
    },
    Opendal {
        scheme: String,
    },
}

/// How to open a location besides the URL itself.
#[derive(Debug, Clone, Default)]
pub struct OpenOptions {
    /// `-o key=value` options for the storage service.
    pub options: Vec<(String, String)>,
    /// At most this many concurrent requests (default per service).
    pub connections: Option<usize>,
}

impl OpenOptions {
    /// Parses `key=value` strings.
    pub fn parse_options<S: AsRef<str>>(items: &[S]) -> Result<Vec<(String, String)>> {
        items
            .iter()
            .map(|s| {
                let s = s.as_ref();
                match s.split_once('=') {
                    Some((k, v)) if !k.trim().is_empty() => {
                        Ok((k.trim().to_string(), v.to_string()))
                    }
                    _ => Err(Error::InvalidArgument(format!(
                        "option {s:?} is not KEY=VALUE"
                    ))),
                }
            })
            .collect()
    }
}

/// Prefixes of other tools' backends that cairn does not speak directly.
const FOREIGN: &[&str] = &["b2:", "gs:", "azure:", "swift:", "rest:", "rclone:"];

impl Location {
    pub fn parse(url: &str) -> Result<Location> {
        let bad = |why: &str| {
            Error::InvalidArgument(format!("invalid repository location {url:?}: {why}"))
        };
        if url.is_empty() {
            return Err(Error::InvalidArgument(
                "the repository location is empty".into(),
            ));
        }
        if let Some(p) = url.strip_prefix("local:") {
            if p.is_empty() {
                return Err(bad("no path after local:"));
            }
            return Ok(Location::Local(PathBuf::from(p)));
        }
        if let Some(rest) = url.strip_prefix("s3:") {
            return parse_s3(rest).map_err(|why| bad(&why));
        }
        if let Some(rest) = url.strip_prefix("sftp:") {
            return parse_sftp(rest).map_err(|why| bad(&why));
        }
        if let Some(scheme) = url.strip_prefix("opendal:") {
            let scheme = scheme.trim_end_matches("://");
            if scheme.is_empty()
                || !scheme
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            {
                return Err(bad(
                    "use opendal:SERVICE (e.g. opendal:fs) and -o key=value for its settings",
                ));
            }
            return Ok(Location::Opendal {
                scheme: scheme.to_ascii_lowercase(),
            });
        }
        if let Some(p) = FOREIGN.iter().find(|p| url.starts_with(**p)) {
            return Err(bad(&format!(
                "{p} is not supported; use opendal:SERVICE with -o key=value if OpenDAL has the service"
            )));
        }
        Ok(Location::Local(PathBuf::from(url)))
    }

    pub fn is_remote(&self) -> bool {
        !matches!(self, Location::Local(_))
    }

    /// The OpenDAL scheme.
    pub fn scheme(&self) -> &str {
        match self {
            Location::Local(_) => "fs",
            Location::S3 { .. } => "s3",
            Location::Sftp { .. } => "sftp",
            Location::Opendal { scheme } => scheme,
        }
    }

    /// Concurrent requests when `--connections` is not given.
    pub fn default_connections(&self) -> usize {
        match self.scheme() {
            "s3" => 5,
            "sftp" => 2,
            _ => 4,
        }
    }

    /// The OpenDAL service configuration the URL stands for, before `-o`
    /// options.
    fn service_config(&self) -> BTreeMap<String, String> {
        let mut m = BTreeMap::new();
        match self {
            Location::Local(p) => {
                m.insert("root".into(), p.display().to_string());
            }
            Location::S3 {
                endpoint,
                bucket,
                prefix,
            } => {
                m.insert("bucket".into(), bucket.clone());
                m.insert("root".into(), format!("/{prefix}"));
                if let Some(e) = endpoint {
                    m.insert("endpoint".into(), e.clone());
                }
                let region = ["AWS_DEFAULT_REGION", "AWS_REGION"]
                    .iter()
                    .filter_map(|v| std::env::var(v).ok())
                    .find(|v| !v.is_empty())
                    .unwrap_or_else(|| "us-east-1".to_string());
                m.insert("region".into(), region);
            }
            Location::Sftp {
                user,
                host,
                port,
                path,
            } => {
                let endpoint = if user.is_some() || port.is_some() {
                    let mut e = String::from("ssh://");
                    if let Some(u) = user {
                        e.push_str(u);
                        e.push('@');
                    }
                    e.push_str(host);
                    if let Some(p) = port {
                        e.push_str(&format!(":{p}"));
                    }
                    e
                } else {
                    host.clone()
                };
                m.insert("endpoint".into(), endpoint);
                m.insert("root".into(), path.clone());
            }
            Location::Opendal { .. } => {}
        }
        m
    }
}

fn parse_s3(rest: &str) -> std::result::Result<Location, String> {
    let (endpoint, path) = if let Some((scheme, r)) = rest
        .strip_prefix("https://")
        .map(|r| ("https", r))
        .or_else(|| rest.strip_prefix("http://").map(|r| ("http", r)))
    {
        let (host, path) = r.split_once('/').unwrap_or((r, ""));
        if host.is_empty() {
            return Err("no host after the scheme".into());
        }
        (Some(format!("{scheme}://{host}")), path)
    } else {
        let (first, path) = rest.split_once('/').unwrap_or((rest, ""));
        let is_host = first.contains('.') || first.contains(':') || first == "localhost";
        if !is_host {
            (None, rest)
        } else if first == "s3.amazonaws.com" {
            (None, path)
        } else {
            (Some(format!("https://{first}")), path)
        }
    };
    let path = path.trim_matches('/');
    let (bucket, prefix) = path.split_once('/').unwrap_or((path, ""));
    if bucket.is_empty() {
        return Err(
            "no bucket (use s3:https://HOST/BUCKET/PREFIX or s3:s3.amazonaws.com/BUCKET/PREFIX)"
                .into(),
        );
    }
    Ok(Location::S3 {
        endpoint,
        bucket: bucket.to_string(),
        prefix: prefix.trim_matches('/').to_string(),
    })
}

/// `[USER@]HOST` or `[USER@][V6]`, returning user and host (without
/// brackets) and what follows the host.
fn split_user_host(s: &str) -> std::result::Result<(Option<String>, String, &str), String> {
    // The user ends at the last `@` before the path.
    let head = &s[..s.find('/').unwrap_or(s.len())];
    let (user, rest) = match head.rfind('@') {
        Some(0) => return Err("empty user before @".into()),
        Some(at) => (Some(s[..at].to_string()), &s[at + 1..]),
        None => (None, s),
    };
    if let Some(r) = rest.strip_prefix('[') {
        let end = r.find(']').ok_or("unclosed [ in host")?;
        return Ok((user, r[..end].to_string(), &r[end + 1..]));
    }
    let end = rest.find([':', '/']).unwrap_or(rest.len());
    Ok((user, rest[..end].to_string(), &rest[end..]))
}

fn parse_sftp(rest: &str) -> std::result::Result<Location, String> {
    let (user, host, port, path) = if let Some(r) = rest.strip_prefix("//") {
        let (user, host, after) = split_user_host(r)?;
        let (port, path) = match after.strip_prefix(':') {
            Some(a) => {
                let end = a.find('/').unwrap_or(a.len());
                let port: u16 = a[..end]
                    .parse()
                    .map_err(|_| format!("invalid port {:?}", &a[..end]))?;
                (Some(port), &a[end..])
            }
            None => (None, after),
        };
        (user, host, port, path.to_string())
    } else {
        let (user, host, after) = split_user_host(rest)?;
        let path = after
            .strip_prefix(':')
            .ok_or("use sftp:[USER@]HOST:/PATH or sftp://[USER@]HOST[:PORT]/PATH")?;
        (user, host, None, path.to_string())
    };
    if host.is_empty() {
        return Err("no host".into());
    }
    if !path.starts_with('/') {
        return Err(
            "the path must be absolute (sftp:HOST:/srv/repo or sftp://HOST/srv/repo)".into(),
        );
    }
    let path = format!("/{}", path.trim_matches('/'));
    Ok(Location::Sftp {
        user,
        host,
        port,
        path,
    })
}

/// Opens the backend for a repository location. With `create` a missing
/// local directory is created; remote storage needs no preparation (a
/// bucket must exist; SFTP directories are created as needed).
pub fn open(url: &str, opts: &OpenOptions, create: bool) -> Result<Arc<dyn Backend>> {
    let loc = Location::parse(url)?;
    if let Location::Local(path) = &loc {
        if !opts.options.is_empty() {
            return Err(Error::InvalidArgument(format!(
                "{url}: -o options apply to remote repositories only"
            )));
        }
        return Ok(Arc::new(OpendalBackend::local(Path::new(path), create)?));
    }
    let mut cfg = loc.service_config();
    for (k, v) in &opts.options {
        cfg.insert(k.clone(), v.clone());
    }
    opendal::install_default();
    let op = Operator::via_iter(loc.scheme(), cfg).map_err(|e| {
        let mut reason = describe(&e);
        if e.kind() == opendal::ErrorKind::Unsupported {
            reason = format!(
                "service {:?} is not compiled in (available: {}; others need the opendal crate's services-* feature)",
                loc.scheme(),
                SERVICES.join(", ")
            );
        }
        Error::InvalidArgument(format!("cannot open {url}: {reason}"))
    })?;
    // File-system-like services (they can rename) have no atomic uploads;
    // object stores do.
    let rename_writes = op.info().capability().rename && !has_atomic_write_dir(&opts.options);
    let remote = RemoteOptions {
        connections: opts.connections.unwrap_or(loc.default_connections()),
        rename_writes,
        faults: FaultConfig::from_env()?,
    };
    Ok(Arc::new(OpendalBackend::remote_with(
        op,
        url.to_string(),
        &remote,
    )?))
}

fn has_atomic_write_dir(options: &[(String, String)]) -> bool {
    options.iter().any(|(k, _)| k == "atomic_write_dir")
}

/// Whether a location is remote (and so uses the metadata cache by
/// default). Unparsable locations count as local; opening them reports
/// the error.
pub fn is_remote(url: &str) -> bool {
    Location::parse(url).map(|l| l.is_remote()).unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s3(endpoint: Option<&str>, bucket: &str, prefix: &str) -> Location {
        Location::S3 {
            endpoint: endpoint.map(str::to_string),
            bucket: bucket.into(),
            prefix: prefix.into(),
        }
    }

    fn sftp(user: Option<&str>, host: &str, port: Option<u16>, path: &str) -> Location {
        Location::Sftp {
            user: user.map(str::to_string),
            host: host.into(),
            port,
            path: path.into(),
        }
    }

    #[test]
    fn local_paths() {
        assert_eq!(
            Location::parse("/srv/repo").unwrap(),
            Location::Local("/srv/repo".into())
        );
        assert_eq!(
            Location::parse("local:rel/repo").unwrap(),
            Location::Local("rel/repo".into())
        );
        assert_eq!(
            Location::parse("local:s3:odd").unwrap(),
            Location::Local("s3:odd".into())
        );
        assert!(!Location::parse("repo").unwrap().is_remote());
        assert!(Location::parse("").is_err());
        assert!(Location::parse("local:").is_err());
    }

    #[test]
    fn s3_urls() {
        let p = |u| Location::parse(u).unwrap();
        assert_eq!(
            p("s3:http://127.0.0.1:3900/cairn-test"),
            s3(Some("http://127.0.0.1:3900"), "cairn-test", "")
        );
        assert_eq!(
            p("s3:https://minio.example.com/b/some/prefix/"),
            s3(Some("https://minio.example.com"), "b", "some/prefix")
        );
        assert_eq!(
            p("s3:s3.amazonaws.com/bucket/prefix"),
            s3(None, "bucket", "prefix")
        );
        assert_eq!(
            p("s3:s3.eu-west-3.amazonaws.com/bucket"),
            s3(Some("https://s3.eu-west-3.amazonaws.com"), "bucket", "")
        );
        assert_eq!(
            p("s3:localhost:9000/b/p"),
            s3(Some("https://localhost:9000"), "b", "p")
        );
        assert_eq!(p("s3:bucket/a/b"), s3(None, "bucket", "a/b"));
        for bad in [
            "s3:",
            "s3:http://",
            "s3:http://host",
            "s3:http://host/",
            "s3:s3.amazonaws.com",
        ] {
            let e = Location::parse(bad).unwrap_err().to_string();
            assert!(e.contains(bad), "{bad}: {e}");
        }
        assert!(p("s3:b").is_remote());
    }

    #[test]
    fn s3_service_config() {
        let c = p_cfg("s3:http://127.0.0.1:3900/cairn-test/x/y");
        assert_eq!(c["bucket"], "cairn-test");
        assert_eq!(c["root"], "/x/y");
        assert_eq!(c["endpoint"], "http://127.0.0.1:3900");
        assert!(c.contains_key("region"));
        let c = p_cfg("s3:s3.amazonaws.com/b");
        assert_eq!(c["root"], "/");
        assert!(!c.contains_key("endpoint"));
    }

    fn p_cfg(u: &str) -> BTreeMap<String, String> {
        Location::parse(u).unwrap().service_config()
    }

    #[test]
    fn sftp_urls() {
        let p = |u| Location::parse(u).unwrap();
        assert_eq!(
            p("sftp:alice@host.example:/srv/repo"),
            sftp(Some("alice"), "host.example", None, "/srv/repo")
        );
        assert_eq!(p("sftp:host:/r/"), sftp(None, "host", None, "/r"));
        assert_eq!(
            p("sftp://root@127.0.0.1:2222/tmp/cairn-sftp-test"),
            sftp(
                Some("root"),
                "127.0.0.1",
                Some(2222),
                "/tmp/cairn-sftp-test"
            )
        );
        assert_eq!(
            p("sftp://host//srv/repo"),
            sftp(None, "host", None, "/srv/repo")
        );
        assert_eq!(
            p("sftp://u@[::1]:22/r"),
            sftp(Some("u"), "::1", Some(22), "/r")
        );
        assert_eq!(p("sftp:[::1]:/r"), sftp(None, "::1", None, "/r"));
        for bad in [
            "sftp:host",
            "sftp:host:relative/path",
            "sftp://host:notaport/r",
            "sftp://host",
            "sftp::/r",
            "sftp:@h:/r",
            "sftp://u@[::1/r",
        ] {
            let e = Location::parse(bad).unwrap_err().to_string();
            assert!(e.contains(bad), "{bad}: {e}");
        }
    }

    #[test]
    fn sftp_service_config() {
        let c = p_cfg("sftp://root@127.0.0.1:2222/tmp/t");
        assert_eq!(c["endpoint"], "ssh://root@127.0.0.1:2222");
        assert_eq!(c["root"], "/tmp/t");
        let c = p_cfg("sftp:backup-host:/srv/r");
        assert_eq!(c["endpoint"], "backup-host");
    }

    #[test]
    fn opendal_and_foreign() {
        assert_eq!(
            Location::parse("opendal:fs").unwrap(),
            Location::Opendal {
                scheme: "fs".into()
            }
        );
        assert_eq!(Location::parse("opendal:S3").unwrap().scheme(), "s3");
        assert!(Location::parse("opendal:").is_err());
        assert!(Location::parse("opendal:a/b").is_err());
        let e = Location::parse("b2:bucket").unwrap_err().to_string();
        assert!(e.contains("opendal:"), "{e}");
    }

    #[test]
    fn options_parse() {
        assert_eq!(
            OpenOptions::parse_options(&["a=b", "root=/x=y"]).unwrap(),
            vec![("a".into(), "b".into()), ("root".into(), "/x=y".into())]
        );
        assert!(OpenOptions::parse_options(&["novalue"]).is_err());
        assert!(OpenOptions::parse_options(&["=v"]).is_err());
    }

    #[test]
    fn default_connections() {
        assert_eq!(Location::parse("s3:b").unwrap().default_connections(), 5);
        assert_eq!(
            Location::parse("sftp:h:/r").unwrap().default_connections(),
            2
        );
    }

    /// `opendal:fs` with `-o root=...` goes through the remote path
    /// (retries, limits, writes renamed into place) and works as a
    /// repository store.
    #[test]
    fn opendal_fs_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("r");
        let opts = OpenOptions {
            options: vec![("root".into(), root.display().to_string())],
            connections: Some(2),
        };
        let b = open("opendal:fs", &opts, true).unwrap();
        assert_eq!(b.location(), "opendal:fs");
        b.prepare_layout().unwrap();
        b.write("data/ab/abcd", b"hello".to_vec()).unwrap();
        b.write("keys/k", vec![7; 100_000]).unwrap();
        assert_eq!(b.read("data/ab/abcd").unwrap(), b"hello");
        assert_eq!(b.read_range("keys/k", 10, 5).unwrap(), vec![7; 5]);
        assert_eq!(b.size("keys/k").unwrap(), Some(100_000));
        assert_eq!(b.size("keys/none").unwrap(), None);
        let l = b.list("data/").unwrap();
        assert_eq!(l.len(), 1);
        assert_eq!(l[0].path, "data/ab/abcd");
        assert!(b.list("snapshots/").unwrap().is_empty());
        // Nothing is left in tmp/.
        assert!(b.list("tmp/").unwrap().is_empty());
        b.delete("data/ab/abcd").unwrap();
        b.delete("data/ab/abcd").unwrap();
        assert!(b.list("data/").unwrap().is_empty());
        let e = b.read("config").unwrap_err();
        assert!(e.is_not_found(), "{e}");
        assert!(e.to_string().contains("opendal:fs/config"), "{e}");
    }

    #[test]
    fn unknown_service_is_named() {
        let e = open("opendal:nosuch", &OpenOptions::default(), false)
            .err()
            .unwrap()
            .to_string();
        assert!(
            e.contains("opendal:nosuch") && e.contains("not compiled in"),
            "{e}"
        );
    }

    #[test]
    fn local_rejects_options() {
        let dir = tempfile::tempdir().unwrap();
        let opts = OpenOptions {
            options: vec![("a".into(), "b".into())],
            connections: None,
        };
        let url = dir.path().display().to_string();
        assert!(open(&url, &opts, true).is_err());
        assert!(open(&url, &OpenOptions::default(), true).is_ok());
    }

    /// Against a real S3 service when `CAIRN_TEST_S3` names one (see
    /// `.ci/garage.sh`): listing goes through every page of a prefix with
    /// more than 1000 objects.
    #[test]
    fn s3_lists_thousands() {
        let Ok(base) = std::env::var("CAIRN_TEST_S3") else {
            eprintln!("CAIRN_TEST_S3 not set: skipping the S3 listing test");
            return;
        };
        let url = format!(
            "{}/unit-list-{:08x}",
            base.trim_end_matches('/'),
            rand::random::<u32>()
        );
        let b = open(
            &url,
            &OpenOptions {
                connections: Some(16),
                ..Default::default()
            },
            true,
        )
        .unwrap();
        let n = 2100usize;
        std::thread::scope(|s| {
            for t in 0..8 {
                let b = &b;
                s.spawn(move || {
                    for i in (t..n).step_by(8) {
                        b.write(&format!("data/{:02x}/{i:06}", i % 256), vec![1])
                            .unwrap();
                    }
                });
            }
        });
        let l = b.list("data/").unwrap();
        assert_eq!(l.len(), n);
        std::thread::scope(|s| {
            for chunk in l.chunks(l.len() / 8 + 1) {
                let b = &b;
                s.spawn(move || {
                    for f in chunk {
                        b.delete(&f.path).unwrap();
                    }
                });
            }
        });
        assert!(b.list("data/").unwrap().is_empty());
    }
}
