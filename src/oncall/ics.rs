//! An RFC 5545 iCalendar of one person's slots, for subscribing from a phone or mail client.

use chrono::{DateTime, Utc};

use super::{Rota, Slot};

fn stamp(t: DateTime<Utc>) -> String {
    t.format("%Y%m%dT%H%M%SZ").to_string()
}

/// TEXT escaping (RFC 5545 §3.3.11): backslash, semicolon, comma, newline.
pub(super) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            ';' => out.push_str("\\;"),
            ',' => out.push_str("\\,"),
            '\n' => out.push_str("\\n"),
            '\r' => {}
            c => out.push(c),
        }
    }
    out
}

/// Appends one content line, folded so no physical line passes 75 octets
/// (RFC 5545 §3.1), never inside a UTF-8 sequence, ending in CRLF.
pub(super) fn line(out: &mut String, text: &str) {
    let mut width = 0;
    for c in text.chars() {
        let n = c.len_utf8();
        if width + n > 75 {
            out.push_str("\r\n ");
            width = 1;
        }
        out.push(c);
        width += n;
    }
    out.push_str("\r\n");
}

/// A UID that stays the same for the same slot across downloads, so clients
/// update events instead of duplicating them.
fn uid(person: &str, slot: &Slot) -> String {
    let safe = |s: &str| -> String {
        s.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect()
    };
    format!(
        "{}-{}-{}@oncall.lantern",
        safe(&slot.shift),
        stamp(slot.start),
        safe(person)
    )
}

pub(super) fn calendar(
    rota: &Rota,
    person: &str,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    now: DateTime<Utc>,
) -> String {
    let mut out = String::new();
    let name = rota.name_of(person);
    for l in [
        "BEGIN:VCALENDAR",
        "VERSION:2.0",
        "PRODID:-//lantern//on-call rota//EN",
        "CALSCALE:GREGORIAN",
        "METHOD:PUBLISH",
    ] {
        line(&mut out, l);
    }
    line(
        &mut out,
        &format!("X-WR-CALNAME:{}", escape(&format!("on call: {name}"))),
    );
    line(&mut out, &format!("X-WR-TIMEZONE:{}", rota.time_zone));
    for slot in rota.slots(from, to) {
        let mut roles = Vec::new();
        if slot.primary.iter().any(|p| p == person) {
            roles.push("primary");
        }
        if slot.assistant.iter().any(|p| p == person) {
            roles.push("assistant");
        }
        if roles.is_empty() {
            continue;
        }
        let names = |ids: &[String]| {
            ids.iter()
                .map(|id| rota.name_of(id))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let description = format!(
            "primary: {}\nassistant: {}\nsource: {}",
            names(&slot.primary),
            names(&slot.assistant),
            slot.source
        );
        line(&mut out, "BEGIN:VEVENT");
        line(&mut out, &format!("UID:{}", uid(person, &slot)));
        line(&mut out, &format!("DTSTAMP:{}", stamp(now)));
        line(&mut out, &format!("DTSTART:{}", stamp(slot.start)));
        line(&mut out, &format!("DTEND:{}", stamp(slot.end)));
        line(
            &mut out,
            &format!(
                "SUMMARY:{}",
                escape(&format!(
                    "on call: {} ({})",
                    slot.shift,
                    roles.join(" and ")
                ))
            ),
        );
        line(&mut out, &format!("DESCRIPTION:{}", escape(&description)));
        line(&mut out, "TRANSP:OPAQUE");
        line(&mut out, "END:VEVENT");
    }
    line(&mut out, "END:VCALENDAR");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_escapes_backslash_semicolon_comma_and_newline() {
        assert_eq!(escape("a,b;c\\d\ne"), "a\\,b\\;c\\\\d\\ne");
    }

    #[test]
    fn long_lines_fold_at_75_octets_without_splitting_characters() {
        let mut out = String::new();
        let text = format!("DESCRIPTION:{}", "值班".repeat(40));
        line(&mut out, &text);
        let physical: Vec<&str> = out.trim_end_matches("\r\n").split("\r\n").collect();
        assert!(physical.len() > 1);
        for (i, l) in physical.iter().enumerate() {
            assert!(l.len() <= 75, "line {i} has {} octets", l.len());
            if i > 0 {
                assert!(l.starts_with(' '));
            }
        }
        // Unfolding gives the text back.
        assert_eq!(out.trim_end_matches("\r\n").replace("\r\n ", ""), text);
    }

    #[test]
    fn a_short_line_is_left_alone() {
        let mut out = String::new();
        line(&mut out, "BEGIN:VCALENDAR");
        assert_eq!(out, "BEGIN:VCALENDAR\r\n");
    }
}
