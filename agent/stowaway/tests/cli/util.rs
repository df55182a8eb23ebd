//! Test harness: a scratch directory with a repository, the binary, and corpus helpers.

use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A scratch directory with a repository in `repo/`.
pub struct Env {
    _tmp: tempfile::TempDir,
    pub root: PathBuf,
    pub repo: PathBuf,
    password: String,
}

impl Env {
    pub fn new() -> Env {
        let tmp = tempfile::tempdir().expect("tempdir");
        let root = tmp.path().to_path_buf();
        Env {
            repo: root.join("repo"),
            root,
            _tmp: tmp,
            password: "correct horse".into(),
        }
    }

    pub fn with_password(&self, password: &str) -> Env {
        let tmp = tempfile::tempdir().expect("tempdir");
        Env {
            _tmp: tmp,
            root: self.root.clone(),
            repo: self.repo.clone(),
            password: password.into(),
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }

    pub fn dir(&self, name: &str) -> PathBuf {
        let p = self.path(name);
        std::fs::create_dir_all(&p).expect("mkdir");
        p
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_stowaway"));
        // `init` gets a cheap KDF so tests stay fast; everything else is the real path.
        let mut full: Vec<&str> = vec!["--repo", self.repo.to_str().expect("utf-8 path")];
        full.extend_from_slice(args);
        if args.first() == Some(&"init") {
            full.extend_from_slice(&["--kdf-memory-kib", "1024", "--kdf-iterations", "1"]);
        }
        cmd.args(full)
            .env("STOWAWAY_PASSWORD", &self.password)
            .env(
                "STOWAWAY_CACHE_DIR",
                concat!(env!("CARGO_TARGET_TMPDIR"), "/stowaway-cache"),
            )
            .env_remove("STOWAWAY_REPOSITORY")
            .env_remove("STOWAWAY_PASSWORD_FILE")
            .env_remove("RUST_BACKTRACE")
            .stdin(std::process::Stdio::null());
        cmd
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("run stowaway")
    }

    /// Runs and expects success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "stowaway {args:?} failed ({}):\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        let out = self.ok(args);
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"))
    }

    /// Ids (full hex) of the snapshots in the repository, oldest first.
    pub fn snapshot_ids(&self) -> Vec<String> {
        self.json(&["snapshots", "--json"])
            .as_array()
            .expect("a JSON array")
            .iter()
            .map(|s| s["id"].as_str().expect("an id").to_owned())
            .collect()
    }

    /// Runs and expects failure with exit code 1 and one line on stderr, no panic; returns it.
    pub fn fail(&self, args: &[&str]) -> String {
        let out = self.run(args);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(1), "stowaway {args:?}: {stderr}");
        assert!(
            !stderr.contains("panicked") && !stderr.contains("backtrace"),
            "{stderr}"
        );
        let last = stderr.lines().last().unwrap_or_default().to_owned();
        assert!(last.starts_with("stowaway: "), "{stderr}");
        last
    }
}

/// A digest of a directory tree: every entry's kind, permission bits, owner, size, mtime,
/// link target and content, keyed by relative path (the root's own metadata included).
pub fn tree_digest(root: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let full = root.join(&rel);
        let md = std::fs::symlink_metadata(&full).expect("lstat");
        let ft = md.file_type();
        let mut desc = format!(
            "{} mode={:o} uid={} gid={}",
            kind(&md),
            md.permissions().mode() & 0o7777,
            md.uid(),
            md.gid()
        );
        desc.push_str(&format!(" mtime={}.{:09}", md.mtime(), md.mtime_nsec()));
        if ft.is_symlink() {
            desc.push_str(&format!(
                " -> {}",
                std::fs::read_link(&full).unwrap().display()
            ));
        } else if ft.is_file() {
            let bytes = std::fs::read(&full).expect("read");
            desc.push_str(&format!(
                " size={} blake3={}",
                bytes.len(),
                blake3::hash(&bytes)
            ));
        } else if ft.is_dir() {
            for e in std::fs::read_dir(&full).expect("readdir") {
                stack.push(rel.join(e.expect("entry").file_name()));
            }
        }
        out.insert(rel.display().to_string(), desc);
    }
    out
}

fn kind(md: &std::fs::Metadata) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    let ft = md.file_type();
    if ft.is_dir() {
        "dir"
    } else if ft.is_symlink() {
        "symlink"
    } else if ft.is_fifo() {
        "fifo"
    } else if ft.is_file() {
        "file"
    } else {
        "other"
    }
}

/// Paths of files under `root` containing `needle`.
pub fn grep_tree(root: &Path, needle: &[u8]) -> Vec<PathBuf> {
    let mut hits = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).expect("readdir") {
            let p = e.expect("entry").path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let bytes = std::fs::read(&p).expect("read");
                if bytes.windows(needle.len()).any(|w| w == needle)
                    || p.to_string_lossy()
                        .as_bytes()
                        .windows(needle.len())
                        .any(|w| w == needle)
                {
                    hits.push(p);
                }
            }
        }
    }
    hits
}

pub fn count_files(root: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(root) else {
        return 0;
    };
    entries
        .filter_map(Result::ok)
        .map(|e| {
            if e.path().is_dir() {
                count_files(&e.path())
            } else {
                1
            }
        })
        .sum()
}

pub fn largest_file(root: &Path) -> PathBuf {
    let mut best: Option<(u64, PathBuf)> = None;
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).expect("readdir") {
            let p = e.expect("entry").path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let len = p.metadata().expect("stat").len();
                if best.as_ref().is_none_or(|(l, _)| len > *l) {
                    best = Some((len, p));
                }
            }
        }
    }
    best.expect("a file").1
}

pub fn flip_byte(path: &Path, offset: u64) {
    use std::io::{Read, Seek, SeekFrom, Write};
    let mut perms = std::fs::metadata(path).unwrap().permissions();
    perms.set_mode(0o644);
    std::fs::set_permissions(path, perms).unwrap();
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap();
    let mut b = [0u8];
    f.seek(SeekFrom::Start(offset)).unwrap();
    f.read_exact(&mut b).unwrap();
    f.seek(SeekFrom::Start(offset)).unwrap();
    f.write_all(&[b[0] ^ 0x40]).unwrap();
}

/// Generated source trees.
pub mod corpus {
    use std::os::unix::fs::PermissionsExt;
    use std::path::Path;

    /// Deterministic bytes: half compressible text, half noise.
    pub fn bytes(seed: u64, len: usize) -> Vec<u8> {
        let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        let mut out = Vec::with_capacity(len);
        while out.len() < len {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            if (x >> 60) & 1 == 0 {
                out.extend_from_slice(format!("line {} of some text\n", x % 1000).as_bytes());
            } else {
                out.extend_from_slice(&x.to_le_bytes());
            }
        }
        out.truncate(len);
        out
    }

    /// Incompressible bytes.
    pub fn noise(seed: u64, len: usize) -> Vec<u8> {
        let mut x = seed.wrapping_mul(0x2545_F491_4F6C_DD1D) | 1;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 32) as u8
            })
            .collect()
    }

    /// `n` files of `size` bytes in two directories.
    pub fn bulk(root: &Path, n: usize, size: usize) {
        for i in 0..n {
            let dir = root.join(if i % 2 == 0 { "d0" } else { "d1" });
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(
                dir.join(format!("file-{i:04}.bin")),
                bytes(i as u64 + 1, size),
            )
            .unwrap();
        }
    }

    /// Rewrites 4 KiB in the middle of a file.
    pub fn overwrite(path: &Path, seed: u64) {
        let mut data = std::fs::read(path).unwrap();
        let mid = data.len() / 2;
        let patch = bytes(seed + 1000, 4096.min(data.len() - mid));
        data[mid..mid + patch.len()].copy_from_slice(&patch);
        std::fs::write(path, data).unwrap();
    }

    /// Every entry kind the volume addon handles, with varied metadata.
    pub fn every_kind(root: &Path) {
        let set_mode = |p: &Path, mode: u32| {
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap()
        };
        std::fs::create_dir_all(root.join("dir/sub/empty")).unwrap();
        std::fs::create_dir_all(root.join("other")).unwrap();
        std::fs::create_dir_all(root.join("private")).unwrap();
        std::fs::write(root.join("empty-file"), b"").unwrap();
        std::fs::write(root.join("dir/small.txt"), b"hello\n").unwrap();
        std::fs::write(
            root.join("dir/sub/big.bin"),
            bytes(42, 12 * 1024 * 1024 + 17),
        )
        .unwrap();
        std::fs::write(root.join("dir/hard-a"), bytes(7, 5000)).unwrap();
        std::fs::hard_link(root.join("dir/hard-a"), root.join("other/hard-b")).unwrap();
        std::fs::write(root.join("private/key"), b"secret").unwrap();
        std::fs::write(root.join("dir/script.sh"), b"#!/bin/sh\n").unwrap();
        std::fs::write(root.join("name with spaces & ünïcödé"), b"odd").unwrap();
        std::os::unix::fs::symlink("small.txt", root.join("dir/rel-link")).unwrap();
        std::os::unix::fs::symlink("/etc/hostname", root.join("abs-link")).unwrap();
        std::os::unix::fs::symlink("does/not/exist", root.join("dangling")).unwrap();
        rustix::fs::mknodat(
            rustix::fs::CWD,
            root.join("fifo"),
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o640),
            0,
        )
        .unwrap();
        set_mode(&root.join("dir/script.sh"), 0o755);
        set_mode(&root.join("private/key"), 0o600);
        set_mode(&root.join("private"), 0o700);
        set_mode(&root.join("dir/small.txt"), 0o4640);
        if rustix::process::geteuid().is_root() {
            for (p, uid, gid) in [("dir/small.txt", 1234, 5678), ("private", 42, 43)] {
                std::os::unix::fs::lchown(root.join(p), Some(uid), Some(gid)).unwrap();
            }
            std::os::unix::fs::lchown(root.join("dir/rel-link"), Some(7), Some(8)).unwrap();
        }
        // Distinct times, set last (children first: writing into a directory changes it).
        let t = |secs: i64, nsec: i64| rustix::fs::Timestamps {
            last_access: rustix::fs::Timespec {
                tv_sec: secs,
                tv_nsec: nsec,
            },
            last_modification: rustix::fs::Timespec {
                tv_sec: secs,
                tv_nsec: nsec,
            },
        };
        for (i, p) in [
            "dir/small.txt",
            "dir/sub/big.bin",
            "dir/hard-a",
            "empty-file",
            "dir/rel-link",
            "dir/sub/empty",
            "dir/sub",
            "dir",
            "other",
            "private",
            "",
        ]
        .iter()
        .enumerate()
        {
            rustix::fs::utimensat(
                rustix::fs::CWD,
                root.join(p),
                &t(1_600_000_000 + i as i64 * 1000, 123_456_789),
                rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
            )
            .unwrap();
        }
    }
}
