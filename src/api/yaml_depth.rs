//! A bound on the nesting of YAML flow collections, checked before parsing.
//!
//! The YAML parser takes time that grows with the square of the nesting
//! depth of flow collections (`[[[...]]]`, `{a: {a: ...}}`): 100,000
//! levels, 200 KB, hold a CPU for about 15 seconds, and the deserializer
//! only refuses the document after that. This scan is linear. It follows
//! YAML's tokens closely enough to skip brackets inside quoted scalars,
//! comments and block scalars, and it counts a bracket wherever it may
//! open a collection, so it never reports less depth than the parser
//! would reach.

/// The deepest flow nesting accepted; the deserializer refuses documents
/// nested deeper than this anyway.
pub const MAX_FLOW_DEPTH: usize = 128;

/// Where a document first nests its flow collections deeper than `limit`:
/// line and column, from 1.
pub fn too_deep(text: &[u8], limit: usize) -> Option<(usize, usize)> {
    let mut scan = Scan {
        text,
        at: 0,
        line: 1,
        line_start: 0,
    };
    let mut depth = 0usize;
    // Whether the next byte may begin a token: only there can a quote open
    // a quoted scalar, a `#` a comment, a bracket a collection outside one.
    let mut token_start = true;

    while let Some(byte) = scan.peek() {
        match byte {
            b'\n' => {
                scan.newline();
                token_start = true;
                continue;
            }
            b' ' | b'\t' | b'\r' => token_start = true,
            b'#' if token_start => {
                scan.skip_line();
                continue;
            }
            b'\'' | b'"' if token_start => {
                scan.skip_quoted(byte);
                token_start = false;
                continue;
            }
            // An anchor or tag may sit right before a collection: `&a[`.
            b'&' | b'!' if token_start => {
                scan.skip_name();
                continue;
            }
            b'|' | b'>' if token_start && depth == 0 => {
                scan.skip_block_scalar();
                token_start = true;
                continue;
            }
            b'[' | b'{' if token_start || depth > 0 => {
                depth += 1;
                if depth > limit {
                    return Some(scan.position());
                }
                token_start = true;
            }
            b']' | b'}' if depth > 0 => {
                depth -= 1;
                token_start = false;
            }
            b',' if depth > 0 => token_start = true,
            // In a flow collection a value may follow `:` directly
            // (`{"a":"b"}`); elsewhere only after a space.
            b':' => token_start = depth > 0,
            _ => token_start = false,
        }
        scan.at += 1;
    }
    None
}

struct Scan<'a> {
    text: &'a [u8],
    at: usize,
    line: usize,
    line_start: usize,
}

impl Scan<'_> {
    fn peek(&self) -> Option<u8> {
        self.text.get(self.at).copied()
    }

    fn position(&self) -> (usize, usize) {
        (self.line, self.at - self.line_start + 1)
    }

    /// Steps over the line break under the cursor.
    fn newline(&mut self) {
        self.at += 1;
        self.line += 1;
        self.line_start = self.at;
    }

    /// Moves to the end of the line, before its line break.
    fn skip_line(&mut self) {
        while self.peek().is_some_and(|b| b != b'\n') {
            self.at += 1;
        }
    }

    /// Steps over an anchor or tag, up to a space or a flow indicator.
    fn skip_name(&mut self) {
        self.at += 1;
        let ends = |b: u8| b.is_ascii_whitespace() || b"[]{},".contains(&b);
        while self.peek().is_some_and(|b| !ends(b)) {
            self.at += 1;
        }
    }

    /// Steps over a quoted scalar: `''` inside single quotes and a
    /// backslash escape inside double quotes do not end it.
    fn skip_quoted(&mut self, quote: u8) {
        self.at += 1;
        while let Some(byte) = self.peek() {
            match byte {
                b'\n' => {
                    self.newline();
                    continue;
                }
                b'\\' if quote == b'"' => {
                    self.at += 1;
                    if self.peek() == Some(b'\n') {
                        self.newline();
                        continue;
                    }
                }
                b'\'' if quote == b'\'' && self.text.get(self.at + 1) == Some(&b'\'') => {
                    self.at += 1;
                }
                _ if byte == quote => {
                    self.at += 1;
                    return;
                }
                _ => {}
            }
            self.at += 1;
        }
    }

    /// Steps over a block scalar (`|` or `>`): the rest of its line, then
    /// every line that is blank or indented at least as far as its first
    /// non-blank line, when that is indented further than the line of the
    /// indicator.
    fn skip_block_scalar(&mut self) {
        let parent = self.indent_of(self.line_start);
        self.skip_line();
        let mut content = None;
        while self.peek() == Some(b'\n') {
            let next = self.at + 1;
            let indent = self.indent_of(next);
            let blank = matches!(self.text.get(next + indent), None | Some(b'\n' | b'\r'));
            let inside = match content {
                _ if blank => true,
                None => indent > parent,
                Some(content) => indent >= content,
            };
            if !inside {
                return;
            }
            if !blank && content.is_none() {
                content = Some(indent);
            }
            self.newline();
            self.skip_line();
        }
    }

    fn indent_of(&self, line_start: usize) -> usize {
        self.text[line_start.min(self.text.len())..]
            .iter()
            .take_while(|&&b| b == b' ')
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn depth_ok(text: &str, limit: usize) -> bool {
        too_deep(text.as_bytes(), limit).is_none()
    }

    #[test]
    fn nested_flow_collections_are_counted() {
        assert!(depth_ok("a: [[[1]]]", 3));
        assert!(!depth_ok("a: [[[[1]]]]", 3));
        assert!(!depth_ok("a: {b: {c: {d: 1}}}", 2));
        assert!(!depth_ok("- [1, [2, [3]]]", 2));
        assert_eq!(too_deep(b"a: 1\nb: [[x]]", 1), Some((2, 5)));
    }

    #[test]
    fn closed_collections_do_not_add_up() {
        let wide = "a: [".to_string() + &"[1], ".repeat(1000) + "]";
        assert!(depth_ok(&wide, 2));
    }

    #[test]
    fn brackets_in_scalars_and_comments_are_not_nesting() {
        assert!(depth_ok("path: '/v1/[[[[[['\nb: \"{{{{{{\"", 1));
        assert!(depth_ok("a: 1 # [[[[[[\nb: 2", 1));
        assert!(depth_ok("desc: |\n  [[[[[[\n  {{{{\nb: 1", 1));
        assert!(depth_ok("key: a[[[[b\n", 1));
        assert!(depth_ok("a: 'it''s [[[['", 1));
        assert!(depth_ok("a: \"\\\" [[[[\"", 1));
    }

    #[test]
    fn brackets_hidden_behind_closing_brackets_in_quotes_still_count() {
        // A closing bracket inside a quoted scalar closes nothing.
        let sneaky = "a: ".to_string() + &"[']', ".repeat(10);
        assert!(!depth_ok(&sneaky, 5));
        let json_like = "{\"a\":".repeat(10);
        assert!(!depth_ok(&json_like, 5));
    }

    #[test]
    fn collections_right_after_an_anchor_or_tag_count() {
        assert!(!depth_ok("a: &x[[[[1]]]]", 3));
        assert!(!depth_ok("a: !!seq[[[[1]]]]", 3));
    }

    #[test]
    fn flow_collections_after_a_block_scalar_count() {
        let text = "a: |\n    x\n  [[[[[[1]]]]]]";
        assert!(!depth_ok(text, 3));
        let after = "a: >\n  text\nb: [[[[1]]]]";
        assert!(!depth_ok(after, 3));
    }
}
