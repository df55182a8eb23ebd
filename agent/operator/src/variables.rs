//! `${name}` substitution in templates (blueprints, hooks), with KubeStash's
//! `${name:=default}` form.

use std::collections::BTreeMap;

/// What to do with a `${name}` that has no value and no default.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unknown {
    /// Leave it as written.
    Keep,
    /// Fail, naming it.
    Error,
}

/// Replaces every `${name}` and `${name:=default}` in `text`. With [`Unknown::Error`], the
/// first name without a value is the error.
pub fn substitute(
    text: &str,
    vars: &BTreeMap<String, String>,
    unknown: Unknown,
) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            out.push_str(&rest[start..]);
            return Ok(out);
        };
        let inner = &after[..end];
        let (name, default) = match inner.split_once(":=") {
            Some((n, d)) => (n, Some(d)),
            None => (inner, None),
        };
        match (vars.get(name).map(String::as_str).or(default), unknown) {
            (Some(value), _) => out.push_str(value),
            (None, Unknown::Keep) => out.push_str(&rest[start..start + 3 + end]),
            (None, Unknown::Error) => return Err(name.to_owned()),
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn substitutes_defaults_and_unknowns() {
        let vars = BTreeMap::from([("a".to_owned(), "1".to_owned())]);
        let keep = |t| substitute(t, &vars, Unknown::Keep);
        assert_eq!(keep("x${a}y"), Ok("x1y".to_owned()));
        assert_eq!(keep("${b:=2}/${a:=9}"), Ok("2/1".to_owned()));
        assert_eq!(keep("${b} ${a"), Ok("${b} ${a".to_owned()));
        assert_eq!(
            substitute("${b}", &vars, Unknown::Error),
            Err("b".to_owned())
        );
        assert_eq!(keep("no vars"), Ok("no vars".to_owned()));
    }
}
