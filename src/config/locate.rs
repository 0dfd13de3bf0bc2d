//! Maps between TOML key paths (`server.listen`, `checks[2].url`) and source lines.
//!
//! Serde's errors carry a byte span but not the key, and validation errors carry
//! the key but not the span; this module answers both questions from one
//! span-preserving parse, so every config error can name file, line and key.

use std::ops::Range;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

/// The 1-based line of byte `offset` in `text`.
pub fn line_of_offset(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text.as_bytes()[..end]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// The dotted path of the deepest key whose key or value contains `offset`.
pub fn key_at(text: &str, offset: usize) -> Option<String> {
    // Recovering parse: a syntax error still names the key it broke.
    let (doc, _) = DeTable::parse_recoverable(text);
    let mut path = String::new();
    if deepest_in_table(doc.get_ref(), offset, &mut path) {
        return Some(path);
    }
    key_on_line(text, line_of_offset(text, offset))
}

/// For text too broken to parse around the error (an unclosed string, a
/// duplicate key): the `key =` written on that line, under the nearest table
/// header above it.
fn key_on_line(text: &str, line: usize) -> Option<String> {
    let lines: Vec<&str> = text.lines().collect();
    let here = lines.get(line.checked_sub(1)?)?.trim();
    let (name, _) = here.split_once('=')?;
    let name = name.trim().trim_matches('"');
    if name.is_empty() || name.contains(char::is_whitespace) {
        return None;
    }
    let table = lines[..line - 1].iter().rev().find_map(|l| {
        let l = l.trim();
        let inner = l.strip_prefix("[[").and_then(|l| l.strip_suffix("]]"));
        inner
            .or_else(|| l.strip_prefix('[').and_then(|l| l.strip_suffix(']')))
            .map(str::trim)
    });
    Some(match table {
        Some(t) => format!("{t}.{name}"),
        None => name.to_string(),
    })
}

/// The 1-based line where the key at `path` is written, if it is written at all.
pub fn line_of_key(text: &str, path: &str) -> Option<usize> {
    let doc = DeTable::parse(text).ok()?;
    let segments = parse_path(path)?;
    let mut table = doc.get_ref();
    let mut span: Option<Range<usize>> = None;
    let mut current: Option<&Spanned<DeValue>> = None;
    for segment in segments {
        match segment {
            Segment::Key(name) => {
                if let Some(value) = current {
                    table = match value.get_ref() {
                        DeValue::Table(t) => t,
                        _ => return None,
                    };
                }
                let (key, value) = table.get_key_value(name)?;
                span = Some(key.span());
                current = Some(value);
            }
            Segment::Index(i) => {
                let value = current?;
                let DeValue::Array(items) = value.get_ref() else {
                    return None;
                };
                let item = items.get(i)?;
                span = Some(item.span());
                current = Some(item);
            }
        }
    }
    span.map(|s| line_of_offset(text, s.start))
}

/// The line of `path`, or when it is not written (a required key left out)
/// the line of the nearest table above it that is, e.g. its `[[checks]]` header.
pub fn line_of_key_or_table(text: &str, path: &str) -> Option<usize> {
    let mut path = path;
    loop {
        if let Some(line) = line_of_key(text, path) {
            return Some(line);
        }
        path = &path[..path.rfind(['.', '['])?];
    }
}

enum Segment<'a> {
    Key(&'a str),
    Index(usize),
}

fn parse_path(path: &str) -> Option<Vec<Segment<'_>>> {
    let mut out = Vec::new();
    for part in path.split('.') {
        let (name, mut rest) = match part.find('[') {
            Some(i) => (&part[..i], &part[i..]),
            None => (part, ""),
        };
        if !name.is_empty() {
            out.push(Segment::Key(name));
        }
        while let Some(stripped) = rest.strip_prefix('[') {
            let end = stripped.find(']')?;
            out.push(Segment::Index(stripped[..end].parse().ok()?));
            rest = &stripped[end + 1..];
        }
    }
    Some(out)
}

fn deepest_in_table(table: &DeTable, offset: usize, path: &mut String) -> bool {
    for (key, value) in table.iter() {
        let len = path.len();
        if !path.is_empty() {
            path.push('.');
        }
        path.push_str(key.get_ref());
        if key.span().contains(&offset) {
            return true;
        }
        // Tables are descended even when their own span does not cover the
        // offset: a `[header]` table's span is only its header line.
        if deepest_in_value(value, offset, path) {
            return true;
        }
        path.truncate(len);
    }
    false
}

fn deepest_in_value(value: &Spanned<DeValue>, offset: usize, path: &mut String) -> bool {
    match value.get_ref() {
        DeValue::Table(t) => deepest_in_table(t, offset, path) || value.span().contains(&offset),
        DeValue::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                let len = path.len();
                path.push_str(&format!("[{i}]"));
                if deepest_in_value(item, offset, path) {
                    return true;
                }
                path.truncate(len);
            }
            value.span().contains(&offset)
        }
        _ => value.span().contains(&offset),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = "# top\n[server]\nlisten = \"x\"\n\n[[checks]]\nname = \"a\"\n\n[[checks]]\nname = \"b\"\nurl = \"u\"\n";

    #[test]
    fn finds_the_line_of_nested_and_indexed_keys() {
        assert_eq!(line_of_key(DOC, "server.listen"), Some(3));
        assert_eq!(line_of_key(DOC, "checks[1].url"), Some(10));
        assert_eq!(line_of_key(DOC, "checks[0].name"), Some(6));
        assert_eq!(line_of_key(DOC, "server.absent"), None);
    }

    #[test]
    fn a_key_not_written_points_at_its_table() {
        assert_eq!(line_of_key_or_table(DOC, "checks[1].absent"), Some(8));
        assert_eq!(line_of_key_or_table(DOC, "server.absent"), Some(2));
        assert_eq!(line_of_key_or_table(DOC, "server.listen"), Some(3));
        assert_eq!(line_of_key_or_table(DOC, "nowhere.absent"), None);
    }

    #[test]
    fn finds_the_key_at_an_offset() {
        let off = DOC.find("\"u\"").unwrap();
        assert_eq!(key_at(DOC, off).as_deref(), Some("checks[1].url"));
        let off = DOC.find("listen").unwrap();
        assert_eq!(key_at(DOC, off).as_deref(), Some("server.listen"));
    }

    #[test]
    fn broken_lines_still_name_their_key() {
        let doc = "[server]\nlisten = \"x\"\nlisten = \"y\"\n";
        let off = doc.rfind("listen").unwrap();
        assert_eq!(key_at(doc, off).as_deref(), Some("server.listen"));
        let doc = "top = 1\n[a]\nb = \"unclosed\n";
        assert_eq!(
            key_at(doc, doc.find("\"unclosed").unwrap()).as_deref(),
            Some("a.b")
        );
    }
}
