//! The `exclude` parameter: glob patterns, one per line.
//!
//! * A pattern without `/` matches an entry's *name* at any depth (`*.tmp`, `.cache`).
//! * A pattern with `/` matches the path relative to the volume root (`var/log/*.gz`); a
//!   leading `/` is allowed and changes nothing.
//! * A trailing `/` restricts the pattern to directories (`cache/`).
//! * `*` matches any characters except `/`, `?` one character except `/`, `[abc]`, `[a-z]`
//!   and `[!a-z]` one character of (or not of) a set, `\x` the character `x`. A segment that
//!   is exactly `**` matches any number of segments, including none (`**/node_modules`).
//! * Empty lines and lines starting with `#` are ignored.
//!
//! An excluded directory is left out with everything under it.

/// One piece of a segment pattern.
#[derive(Debug, Clone, PartialEq)]
enum Token {
    Literal(char),
    /// `?`
    AnyChar,
    /// `*`
    AnyRun,
    /// `[...]`: ranges, negated or not.
    Class(bool, Vec<(char, char)>),
}

#[derive(Debug, Clone, PartialEq)]
enum Segment {
    /// `**`: any number of path segments.
    AnySegments,
    Glob(Vec<Token>),
}

#[derive(Debug, Clone)]
struct Pattern {
    /// Match against the whole relative path (the pattern had a `/`), else the name only.
    anchored: bool,
    dir_only: bool,
    segments: Vec<Segment>,
}

/// A compiled set of exclude patterns.
#[derive(Debug, Default)]
pub struct Excludes {
    patterns: Vec<Pattern>,
}

impl Excludes {
    /// Compiles the lines of the `exclude` parameter. An unterminated `[` is an error.
    pub fn parse(lines: &[String]) -> Result<Excludes, String> {
        let mut patterns = Vec::new();
        for line in lines {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            patterns.push(compile(line).map_err(|e| format!("{line:?}: {e}"))?);
        }
        Ok(Excludes { patterns })
    }

    /// Whether `path` (relative to the volume root) is excluded.
    pub fn is_excluded(&self, path: &str, is_dir: bool) -> bool {
        if self.patterns.is_empty() {
            return false;
        }
        let segments: Vec<&str> = path.split('/').collect();
        let name = segments.last().copied().unwrap_or_default();
        self.patterns.iter().any(|p| {
            if p.dir_only && !is_dir {
                return false;
            }
            if p.anchored {
                match_segments(&p.segments, &segments)
            } else {
                match &p.segments[..] {
                    [Segment::Glob(tokens)] => {
                        match_tokens(tokens, &name.chars().collect::<Vec<_>>())
                    }
                    _ => true, // a lone `**`
                }
            }
        })
    }
}

fn compile(line: &str) -> Result<Pattern, String> {
    let (body, dir_only) = match line.strip_suffix('/') {
        Some(b) => (b, true),
        None => (line, false),
    };
    let anchored = body.contains('/');
    let body = body.strip_prefix('/').unwrap_or(body);
    if body.is_empty() {
        return Err("empty pattern".into());
    }
    let segments = body
        .split('/')
        .filter(|s| !s.is_empty())
        .map(|s| {
            if s == "**" {
                Ok(Segment::AnySegments)
            } else {
                compile_segment(s).map(Segment::Glob)
            }
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Pattern {
        anchored,
        dir_only,
        segments,
    })
}

fn compile_segment(s: &str) -> Result<Vec<Token>, String> {
    let mut tokens = Vec::new();
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        let token = match c {
            '*' => {
                while chars.peek() == Some(&'*') {
                    chars.next();
                }
                Token::AnyRun
            }
            '?' => Token::AnyChar,
            '\\' => Token::Literal(chars.next().unwrap_or('\\')),
            '[' => {
                let negated = matches!(chars.peek(), Some('!' | '^'));
                if negated {
                    chars.next();
                }
                let mut ranges = Vec::new();
                let mut first = true;
                loop {
                    let Some(c) = chars.next() else {
                        return Err("unterminated [".into());
                    };
                    if c == ']' && !first {
                        break;
                    }
                    first = false;
                    let lo = if c == '\\' {
                        chars.next().unwrap_or('\\')
                    } else {
                        c
                    };
                    let mut lookahead = chars.clone();
                    if lookahead.next() == Some('-') && lookahead.peek().is_some_and(|&n| n != ']')
                    {
                        chars.next();
                        let hi = chars.next().unwrap_or(lo);
                        ranges.push((lo, hi));
                    } else {
                        ranges.push((lo, lo));
                    }
                }
                Token::Class(negated, ranges)
            }
            c => Token::Literal(c),
        };
        tokens.push(token);
    }
    Ok(tokens)
}

fn match_segments(pattern: &[Segment], path: &[&str]) -> bool {
    match pattern.split_first() {
        None => path.is_empty(),
        Some((Segment::AnySegments, rest)) => {
            (0..=path.len()).any(|skip| match_segments(rest, &path[skip..]))
        }
        Some((Segment::Glob(tokens), rest)) => match path.split_first() {
            Some((first, others)) => {
                match_tokens(tokens, &first.chars().collect::<Vec<_>>())
                    && match_segments(rest, others)
            }
            None => false,
        },
    }
}

/// Glob match of one segment, with the usual single-star backtracking.
fn match_tokens(tokens: &[Token], name: &[char]) -> bool {
    let (mut t, mut n) = (0, 0);
    let mut backtrack: Option<(usize, usize)> = None;
    while n < name.len() {
        let step = match tokens.get(t) {
            Some(Token::AnyRun) => {
                backtrack = Some((t, n));
                t += 1;
                continue;
            }
            Some(Token::AnyChar) => true,
            Some(Token::Literal(c)) => *c == name[n],
            Some(Token::Class(negated, ranges)) => {
                ranges
                    .iter()
                    .any(|&(lo, hi)| lo <= name[n] && name[n] <= hi)
                    != *negated
            }
            None => false,
        };
        if step {
            t += 1;
            n += 1;
        } else if let Some((bt, bn)) = backtrack {
            // Let the last `*` swallow one more character and retry.
            t = bt + 1;
            n = bn + 1;
            backtrack = Some((bt, bn + 1));
        } else {
            return false;
        }
    }
    tokens[t..].iter().all(|tok| *tok == Token::AnyRun)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ex(patterns: &[&str]) -> Excludes {
        Excludes::parse(&patterns.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn names_match_at_any_depth() {
        let e = ex(&["*.tmp", ".cache"]);
        assert!(e.is_excluded("a.tmp", false));
        assert!(e.is_excluded("x/y/z.tmp", false));
        assert!(e.is_excluded("home/u/.cache", true));
        assert!(!e.is_excluded("a.tmpx", false));
        assert!(!e.is_excluded("tmp/a", false));
    }

    #[test]
    fn paths_are_anchored() {
        let e = ex(&["var/log/*.gz", "/data/cache/", "**/node_modules", "a/**/z"]);
        assert!(e.is_excluded("var/log/x.gz", false));
        assert!(!e.is_excluded("x/var/log/x.gz", false));
        assert!(!e.is_excluded("var/log/sub/x.gz", false));
        assert!(e.is_excluded("data/cache", true));
        assert!(!e.is_excluded("data/cache", false));
        assert!(e.is_excluded("node_modules", true));
        assert!(e.is_excluded("p/q/node_modules", true));
        assert!(e.is_excluded("a/z", false));
        assert!(e.is_excluded("a/b/c/z", false));
    }

    #[test]
    fn classes_and_escapes() {
        let e = ex(&["file[0-9].txt", "[!a]b", "\\*star", "# comment", ""]);
        assert!(e.is_excluded("file7.txt", false));
        assert!(!e.is_excluded("filex.txt", false));
        assert!(e.is_excluded("cb", false));
        assert!(!e.is_excluded("ab", false));
        assert!(e.is_excluded("*star", false));
        assert!(!e.is_excluded("xstar", false));
        assert!(Excludes::parse(&["[abc".to_string()]).is_err());
    }

    #[test]
    fn star_backtracking() {
        let e = ex(&["a*b*c"]);
        assert!(e.is_excluded("aXbYbZc", false));
        assert!(e.is_excluded("abc", false));
        assert!(!e.is_excluded("aXbYbZ", false));
    }
}
