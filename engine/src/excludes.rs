//! Exclusion patterns for backup, with restic's conventions: a pattern
//! without `/` matches a name anywhere; a pattern with `/` matches whole
//! paths from the start; `**` crosses directories; `--iexclude` patterns
//! ignore case. An excluded directory is not descended into.

use std::path::Path;

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};

use crate::error::{Error, Result};

#[derive(Default)]
pub struct Excludes {
    names: Option<GlobSet>,
    paths: Option<GlobSet>,
}

/// Builds [`Excludes`] from patterns.
pub struct ExcludesBuilder {
    names: GlobSetBuilder,
    paths: GlobSetBuilder,
    n_names: usize,
    n_paths: usize,
}

impl Default for ExcludesBuilder {
    fn default() -> Self {
        ExcludesBuilder::new()
    }
}

impl ExcludesBuilder {
    pub fn new() -> ExcludesBuilder {
        ExcludesBuilder {
            names: GlobSetBuilder::new(),
            paths: GlobSetBuilder::new(),
            n_names: 0,
            n_paths: 0,
        }
    }

    pub fn add(&mut self, pattern: &str, case_insensitive: bool) -> Result<()> {
        let pattern = pattern.trim_end_matches('/');
        if pattern.is_empty() {
            return Ok(());
        }
        let bad = |e: globset::Error| {
            Error::InvalidArgument(format!("invalid exclude pattern {pattern:?}: {e}"))
        };
        if pattern.contains('/') {
            let mut p = pattern.to_string();
            if !p.starts_with('/') && !p.starts_with("**") {
                p = format!("**/{p}");
            }
            let g = GlobBuilder::new(&p)
                .literal_separator(true)
                .case_insensitive(case_insensitive)
                .build()
                .map_err(bad)?;
            self.paths.add(g);
            self.n_paths += 1;
        } else {
            let g = GlobBuilder::new(pattern)
                .literal_separator(true)
                .case_insensitive(case_insensitive)
                .build()
                .map_err(bad)?;
            self.names.add(g);
            self.n_names += 1;
        }
        Ok(())
    }

    /// Adds the patterns of an exclude file: one a line, `#` comments and
    /// blank lines ignored.
    pub fn add_file(&mut self, file: &Path, case_insensitive: bool) -> Result<()> {
        let text = std::fs::read_to_string(file).map_err(|e| Error::io(file, e))?;
        for line in text.lines() {
            let l = line.trim();
            if !l.is_empty() && !l.starts_with('#') {
                self.add(l, case_insensitive)?;
            }
        }
        Ok(())
    }

    pub fn build(self) -> Result<Excludes> {
        let bad =
            |e: globset::Error| Error::InvalidArgument(format!("invalid exclude patterns: {e}"));
        Ok(Excludes {
            names: if self.n_names > 0 {
                Some(self.names.build().map_err(bad)?)
            } else {
                None
            },
            paths: if self.n_paths > 0 {
                Some(self.paths.build().map_err(bad)?)
            } else {
                None
            },
        })
    }
}

impl Excludes {
    /// Whether an absolute path is excluded.
    pub fn is_excluded(&self, path: &Path) -> bool {
        if let (Some(set), Some(name)) = (&self.names, path.file_name()) {
            if set.is_match(name) {
                return true;
            }
        }
        if let Some(set) = &self.paths {
            if set.is_match(path) {
                return true;
            }
        }
        false
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_none() && self.paths.is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns() {
        let mut b = ExcludesBuilder::new();
        b.add("*.tmp", false).unwrap();
        b.add("/home/*/cache", false).unwrap();
        b.add("node_modules", false).unwrap();
        b.add("*.LOG", true).unwrap();
        b.add("build/out", false).unwrap();
        let e = b.build().unwrap();
        assert!(e.is_excluded(Path::new("/a/b/x.tmp")));
        assert!(!e.is_excluded(Path::new("/a/b/x.tmp2")));
        assert!(e.is_excluded(Path::new("/home/u/cache")));
        assert!(!e.is_excluded(Path::new("/home/u/v/cache")));
        assert!(e.is_excluded(Path::new("/x/node_modules")));
        assert!(e.is_excluded(Path::new("/x/app.log")));
        assert!(e.is_excluded(Path::new("/src/build/out")));
        assert!(!e.is_excluded(Path::new("/src/build/outer")));
    }
}
