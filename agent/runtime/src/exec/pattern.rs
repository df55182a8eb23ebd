//! Matching a command against `exec` patterns: the program by name, each argument against a
//! glob (`*` matches any run of characters inside one argument), a final `**` matching every
//! remaining argument.

/// Whether `args` match `patterns`.
pub(crate) fn args_match(patterns: &[String], args: &[String]) -> bool {
    let mut args = args.iter();
    for (i, pattern) in patterns.iter().enumerate() {
        if pattern == "**" && i + 1 == patterns.len() {
            return true;
        }
        match args.next() {
            Some(arg) if glob(pattern.as_bytes(), arg.as_bytes()) => {}
            _ => return false,
        }
    }
    args.next().is_none()
}

/// `*` matches any run of bytes (possibly empty); every other byte matches itself.
fn glob(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    // Where the last `*` was and the text position it is currently matched up to.
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && pattern[p] == b'*' {
            star = Some((p, t));
            p += 1;
        } else if p < pattern.len() && pattern[p] == text[t] {
            p += 1;
            t += 1;
        } else if let Some((sp, st)) = star {
            p = sp + 1;
            t = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&b| b == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn literal_star_and_rest() {
        let p = strings(&["--host=*", "*", "**"]);
        assert!(args_match(&p, &strings(&["--host=db", "x"])));
        assert!(args_match(&p, &strings(&["--host=db", "x", "y", "z"])));
        assert!(!args_match(&p, &strings(&["--port=1", "x"])));
        assert!(!args_match(&p, &strings(&["--host=db"])));
    }

    #[test]
    fn exact_arity_without_rest() {
        let p = strings(&["--version"]);
        assert!(args_match(&p, &strings(&["--version"])));
        assert!(!args_match(&p, &strings(&["--version", "extra"])));
        assert!(!args_match(&p, &strings(&[])));
        assert!(args_match(&[], &[]));
        assert!(!args_match(&[], &strings(&["x"])));
    }

    #[test]
    fn double_star_only_at_the_end() {
        // Elsewhere `**` is an ordinary glob of one argument.
        let p = strings(&["**", "end"]);
        assert!(args_match(&p, &strings(&["anything", "end"])));
        assert!(!args_match(&p, &strings(&["a", "b", "end"])));
    }

    #[test]
    fn globs_inside_arguments() {
        assert!(glob(b"a*c", b"abbbc"));
        assert!(glob(b"a*c", b"ac"));
        assert!(glob(b"*", b""));
        assert!(!glob(b"a*c", b"abcd"));
        assert!(glob(b"*.sql", b"db.dump.sql"));
        assert!(!glob(b"x", b""));
    }
}
