//! A small strict JSON parser into a flat, reusable node arena, and KDA's JSONPath subset.
//!
//! The decoder parses every record into [`Doc`] (one arena reused across records, so the
//! steady state allocates nothing), then evaluates the schema's paths on it. Strings are
//! not copied: a node keeps the byte range of its text in the record and a flag telling
//! whether it holds escapes (only then is it unescaped, into a scratch buffer). Objects
//! and arrays keep the range of their source text, which is what a VARCHAR column mapped
//! to them receives (spec §2.3).

/// The JSON kind of a node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Null,
    True,
    False,
    Number,
    String,
    Array,
    Object,
}

/// One JSON value of a parsed document. Children of an array or object follow their
/// parent in the arena; `after` is the index of the first node past the subtree, so the
/// next sibling of a node `n` is `after(n)`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Node {
    pub kind: Kind,
    /// For strings: the content holds backslash escapes.
    pub escaped: bool,
    /// For object members: the key holds backslash escapes.
    pub key_escaped: bool,
    /// Strings: the content between the quotes; other kinds: the whole source text.
    pub start: u32,
    pub end: u32,
    /// Object members: the key's content between its quotes (empty otherwise).
    pub key_start: u32,
    pub key_end: u32,
    pub after: u32,
}

/// Nesting deeper than this is rejected (as serde_json does), so no input can exhaust
/// the stack.
const MAX_DEPTH: u32 = 128;

/// A parsed record: zero or more concatenated JSON documents.
#[derive(Debug, Default)]
pub(crate) struct Doc {
    pub nodes: Vec<Node>,
    pub roots: Vec<u32>,
}

impl Doc {
    /// Parses `text` as a sequence of JSON documents separated by optional whitespace
    /// (the form of Lambda-preprocessed records). Previous contents are discarded.
    pub fn parse(&mut self, text: &str) -> Result<(), String> {
        self.nodes.clear();
        self.roots.clear();
        if text.len() >= u32::MAX as usize {
            return Err("record too large".to_string());
        }
        let mut p = Parser {
            b: text.as_bytes(),
            pos: 0,
            nodes: &mut self.nodes,
        };
        loop {
            p.ws();
            if p.pos >= p.b.len() {
                break;
            }
            let root = p.nodes.len() as u32;
            p.value(0, (0, 0, false))?;
            // Like serde_json's stream deserializer: a number or literal must be followed
            // by whitespace, the end, or the start of a structured document ("01" and
            // "truex" are errors, `{"a":1}{"a":2}` and `1 2` are two documents).
            if !matches!(p.nodes[root as usize].kind, Kind::Array | Kind::Object | Kind::String)
                && !matches!(p.peek(), None | Some(b' ' | b'\n' | b'\r' | b'\t' | b'{' | b'[' | b'"'))
            {
                return Err(p.err("unexpected character after a value"));
            }
            self.roots.push(root);
        }
        Ok(())
    }

    #[inline]
    pub fn node(&self, i: u32) -> &Node {
        &self.nodes[i as usize]
    }

    /// The children of an array or object (none for scalars).
    #[inline]
    pub fn children(&self, i: u32) -> Children<'_> {
        let n = self.node(i);
        let next = if matches!(n.kind, Kind::Array | Kind::Object) {
            i + 1
        } else {
            n.after
        };
        Children {
            doc: self,
            next,
            end: n.after,
        }
    }

    /// The source text of a node, quotes included for strings.
    pub fn source<'t>(&self, i: u32, text: &'t str) -> &'t str {
        let n = self.node(i);
        let (s, e) = if n.kind == Kind::String {
            (n.start as usize - 1, n.end as usize + 1)
        } else {
            (n.start as usize, n.end as usize)
        };
        text.get(s..e).unwrap_or("")
    }

    /// The member `key` of object `obj` (the last one if the key is repeated).
    pub fn member(&self, obj: u32, key: &str, text: &str, tmp: &mut String) -> Option<u32> {
        if self.node(obj).kind != Kind::Object {
            return None;
        }
        let mut found = None;
        for c in self.children(obj) {
            let n = self.node(c);
            let raw = text.get(n.key_start as usize..n.key_end as usize).unwrap_or("");
            let matches = if n.key_escaped {
                tmp.clear();
                unescape_into(raw, tmp);
                tmp == key
            } else {
                raw == key
            };
            if matches {
                found = Some(c);
            }
        }
        found
    }

    /// Element `index` of array `arr`.
    pub fn element(&self, arr: u32, index: usize) -> Option<u32> {
        if self.node(arr).kind != Kind::Array {
            return None;
        }
        self.children(arr).nth(index)
    }

    /// Follows `path` (which must not contain [`Seg::All`]) from node `from`.
    pub fn walk(&self, from: u32, path: &[Seg], text: &str, tmp: &mut String) -> Option<u32> {
        let mut cur = from;
        for seg in path {
            cur = match seg {
                Seg::Key(k) => self.member(cur, k, text, tmp)?,
                Seg::Index(i) => self.element(cur, *i)?,
                Seg::All => return None,
            };
        }
        Some(cur)
    }
}

pub(crate) struct Children<'d> {
    doc: &'d Doc,
    next: u32,
    end: u32,
}

impl Iterator for Children<'_> {
    type Item = u32;
    #[inline]
    fn next(&mut self) -> Option<u32> {
        if self.next >= self.end {
            return None;
        }
        let cur = self.next;
        self.next = self.doc.node(cur).after;
        Some(cur)
    }
}

struct Parser<'a> {
    b: &'a [u8],
    pos: usize,
    nodes: &'a mut Vec<Node>,
}

impl Parser<'_> {
    #[inline]
    fn ws(&mut self) {
        while let Some(&c) = self.b.get(self.pos) {
            if c == b' ' || c == b'\n' || c == b'\r' || c == b'\t' {
                self.pos += 1;
            } else {
                break;
            }
        }
    }

    #[inline]
    fn peek(&self) -> Option<u8> {
        self.b.get(self.pos).copied()
    }

    fn err(&self, what: &str) -> String {
        if self.pos >= self.b.len() {
            format!("invalid JSON: unexpected end of input ({what})")
        } else {
            format!("invalid JSON at byte {}: {what}", self.pos)
        }
    }

    fn expect(&mut self, c: u8, what: &str) -> Result<(), String> {
        if self.peek() == Some(c) {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.err(what))
        }
    }

    fn value(&mut self, depth: u32, key: (u32, u32, bool)) -> Result<(), String> {
        let idx = self.nodes.len();
        let start = self.pos as u32;
        let mut node = Node {
            kind: Kind::Null,
            escaped: false,
            key_escaped: key.2,
            start,
            end: start,
            key_start: key.0,
            key_end: key.1,
            after: idx as u32 + 1,
        };
        match self.peek() {
            Some(b'{') => {
                if depth >= MAX_DEPTH {
                    return Err(self.err("nesting too deep"));
                }
                node.kind = Kind::Object;
                self.nodes.push(node);
                self.pos += 1;
                self.ws();
                if self.peek() == Some(b'}') {
                    self.pos += 1;
                } else {
                    loop {
                        if self.peek() != Some(b'"') {
                            return Err(self.err("expected a member name"));
                        }
                        let (ks, ke, kesc) = self.string()?;
                        self.ws();
                        self.expect(b':', "expected ':'")?;
                        self.ws();
                        self.value(depth + 1, (ks, ke, kesc))?;
                        self.ws();
                        match self.peek() {
                            Some(b',') => {
                                self.pos += 1;
                                self.ws();
                            }
                            Some(b'}') => {
                                self.pos += 1;
                                break;
                            }
                            _ => return Err(self.err("expected ',' or '}'")),
                        }
                    }
                }
                let after = self.nodes.len() as u32;
                let n = &mut self.nodes[idx];
                n.end = self.pos as u32;
                n.after = after;
                return Ok(());
            }
            Some(b'[') => {
                if depth >= MAX_DEPTH {
                    return Err(self.err("nesting too deep"));
                }
                node.kind = Kind::Array;
                self.nodes.push(node);
                self.pos += 1;
                self.ws();
                if self.peek() == Some(b']') {
                    self.pos += 1;
                } else {
                    loop {
                        self.value(depth + 1, (0, 0, false))?;
                        self.ws();
                        match self.peek() {
                            Some(b',') => {
                                self.pos += 1;
                                self.ws();
                            }
                            Some(b']') => {
                                self.pos += 1;
                                break;
                            }
                            _ => return Err(self.err("expected ',' or ']'")),
                        }
                    }
                }
                let after = self.nodes.len() as u32;
                let n = &mut self.nodes[idx];
                n.end = self.pos as u32;
                n.after = after;
                return Ok(());
            }
            Some(b'"') => {
                let (s, e, esc) = self.string()?;
                node.kind = Kind::String;
                node.start = s;
                node.end = e;
                node.escaped = esc;
            }
            Some(b't') => {
                self.literal(b"true")?;
                node.kind = Kind::True;
                node.end = self.pos as u32;
            }
            Some(b'f') => {
                self.literal(b"false")?;
                node.kind = Kind::False;
                node.end = self.pos as u32;
            }
            Some(b'n') => {
                self.literal(b"null")?;
                node.kind = Kind::Null;
                node.end = self.pos as u32;
            }
            Some(b'-' | b'0'..=b'9') => {
                self.number()?;
                node.kind = Kind::Number;
                node.end = self.pos as u32;
            }
            _ => return Err(self.err("expected a value")),
        }
        self.nodes.push(node);
        Ok(())
    }

    fn literal(&mut self, word: &[u8]) -> Result<(), String> {
        if self.b.get(self.pos..self.pos + word.len()) == Some(word) {
            self.pos += word.len();
            Ok(())
        } else {
            Err(self.err("invalid literal"))
        }
    }

    fn digits(&mut self) -> usize {
        let s = self.pos;
        while let Some(b'0'..=b'9') = self.peek() {
            self.pos += 1;
        }
        self.pos - s
    }

    fn number(&mut self) -> Result<(), String> {
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        match self.peek() {
            Some(b'0') => self.pos += 1,
            Some(b'1'..=b'9') => {
                self.digits();
            }
            _ => return Err(self.err("invalid number")),
        }
        if self.peek() == Some(b'.') {
            self.pos += 1;
            if self.digits() == 0 {
                return Err(self.err("invalid number: digit expected after '.'"));
            }
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.pos += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.pos += 1;
            }
            if self.digits() == 0 {
                return Err(self.err("invalid number: digit expected in exponent"));
            }
        }
        Ok(())
    }

    fn hex4(&mut self) -> Result<u32, String> {
        let mut v = 0u32;
        for _ in 0..4 {
            let d = match self.peek() {
                Some(c @ b'0'..=b'9') => c - b'0',
                Some(c @ b'a'..=b'f') => c - b'a' + 10,
                Some(c @ b'A'..=b'F') => c - b'A' + 10,
                _ => return Err(self.err("invalid \\u escape")),
            };
            v = v * 16 + d as u32;
            self.pos += 1;
        }
        Ok(v)
    }

    /// At an opening quote: validates the string and returns its content range.
    fn string(&mut self) -> Result<(u32, u32, bool), String> {
        self.pos += 1;
        let s = self.pos as u32;
        let mut esc = false;
        loop {
            let Some(c) = self.peek() else {
                return Err(self.err("unterminated string"));
            };
            match c {
                b'"' => {
                    let e = self.pos as u32;
                    self.pos += 1;
                    return Ok((s, e, esc));
                }
                b'\\' => {
                    esc = true;
                    self.pos += 1;
                    match self.peek() {
                        Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => self.pos += 1,
                        Some(b'u') => {
                            self.pos += 1;
                            let cp = self.hex4()?;
                            if (0xD800..0xDC00).contains(&cp) {
                                if self.b.get(self.pos..self.pos + 2) != Some(b"\\u") {
                                    return Err(self.err("lone leading surrogate in \\u escape"));
                                }
                                self.pos += 2;
                                let lo = self.hex4()?;
                                if !(0xDC00..0xE000).contains(&lo) {
                                    return Err(self.err("invalid surrogate pair in \\u escape"));
                                }
                            } else if (0xDC00..0xE000).contains(&cp) {
                                return Err(self.err("lone trailing surrogate in \\u escape"));
                            }
                        }
                        _ => return Err(self.err("invalid escape")),
                    }
                }
                0..=0x1F => return Err(self.err("control character in string")),
                _ => self.pos += 1,
            }
        }
    }
}

fn hex_val(b: &[u8]) -> Option<u32> {
    let s = std::str::from_utf8(b.get(..4)?).ok()?;
    u32::from_str_radix(s, 16).ok()
}

/// Appends the unescaped form of a (validated) JSON string's content to `out`.
/// Never panics: a malformed escape (impossible after validation) becomes U+FFFD.
pub(crate) fn unescape_into(raw: &str, out: &mut String) {
    let b = raw.as_bytes();
    let mut i = 0;
    let mut seg = 0;
    while i < b.len() {
        if b[i] != b'\\' {
            i += 1;
            continue;
        }
        out.push_str(raw.get(seg..i).unwrap_or(""));
        let Some(&e) = b.get(i + 1) else {
            out.push('\u{FFFD}');
            return;
        };
        i += 2;
        match e {
            b'"' => out.push('"'),
            b'\\' => out.push('\\'),
            b'/' => out.push('/'),
            b'b' => out.push('\u{8}'),
            b'f' => out.push('\u{c}'),
            b'n' => out.push('\n'),
            b'r' => out.push('\r'),
            b't' => out.push('\t'),
            b'u' => {
                let hi = hex_val(&b[i.min(b.len())..]);
                i += 4;
                let cp = match hi {
                    Some(h) if (0xD800..0xDC00).contains(&h) => {
                        let lo = if b.get(i..i + 2) == Some(b"\\u") {
                            hex_val(&b[(i + 2).min(b.len())..])
                        } else {
                            None
                        };
                        match lo {
                            Some(l) if (0xDC00..0xE000).contains(&l) => {
                                i += 6;
                                Some(0x10000 + ((h - 0xD800) << 10) + (l - 0xDC00))
                            }
                            _ => None,
                        }
                    }
                    other => other,
                };
                out.push(cp.and_then(char::from_u32).unwrap_or('\u{FFFD}'));
            }
            _ => out.push('\u{FFFD}'),
        }
        i = i.min(b.len());
        seg = i;
    }
    out.push_str(raw.get(seg..).unwrap_or(""));
}

/// One step of a JSONPath.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Seg {
    /// `.name` or `['name']`.
    Key(String),
    /// `[n]`.
    Index(usize),
    /// `[0:]` (also `[*]`, `[:]`): every element of an array.
    All,
}

/// Parses KDA's JSONPath subset: `$`, `$.a.b`, `$.arr[0:]`, `$.arr[0:].x`, plus `[n]`,
/// `[*]` and the bracket form `['key']` for keys that are not plain names.
pub(crate) fn parse_path(text: &str) -> Result<Vec<Seg>, String> {
    let t = text.trim();
    let bad = |why: &str| format!("unsupported JSONPath '{text}': {why}");
    let Some(rest) = t.strip_prefix('$') else {
        return Err(bad("it must start with '$'"));
    };
    let b = rest.as_bytes();
    let mut segs = Vec::new();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'.' => {
                i += 1;
                let s = i;
                while i < b.len() && b[i] != b'.' && b[i] != b'[' {
                    i += 1;
                }
                let name = &rest[s..i];
                if name.is_empty() {
                    return Err(bad("empty member name (recursive descent '..' is not supported)"));
                }
                if name == "*" {
                    return Err(bad("wildcard members are not supported"));
                }
                segs.push(Seg::Key(name.to_string()));
            }
            b'[' => {
                i += 1;
                while i < b.len() && b[i] == b' ' {
                    i += 1;
                }
                if let Some(&q @ (b'\'' | b'"')) = b.get(i) {
                    // Quoted key: may contain '.', ']' and spaces.
                    let from = i + 1;
                    let end_q = rest[from..]
                        .find(q as char)
                        .map(|p| p + from)
                        .ok_or_else(|| bad("unterminated quoted key"))?;
                    let close = rest[end_q..]
                        .find(']')
                        .map(|p| p + end_q)
                        .ok_or_else(|| bad("missing ']'"))?;
                    if !rest[end_q + 1..close].trim().is_empty() {
                        return Err(bad("unexpected text after a quoted key"));
                    }
                    segs.push(Seg::Key(rest[from..end_q].to_string()));
                    i = close + 1;
                    continue;
                }
                let close = rest[i..].find(']').map(|p| p + i).ok_or_else(|| bad("missing ']'"))?;
                match rest[i..close].trim() {
                    "0:" | "*" | ":" => segs.push(Seg::All),
                    inner => match inner.parse::<usize>() {
                        Ok(n) => segs.push(Seg::Index(n)),
                        Err(_) => return Err(bad("only [0:], [*] and [n] array steps are supported")),
                    },
                }
                i = close + 1;
            }
            _ => return Err(bad("expected '.' or '['")),
        }
    }
    Ok(segs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Doc, String> {
        let mut d = Doc::default();
        d.parse(text)?;
        Ok(d)
    }

    #[test]
    fn parses_documents_and_navigates() {
        let text = r#" {"a": {"b": [1, "x\ny", true, null]}, "c": -1.5e3} {"a": 2}"#;
        let d = parse(text).unwrap();
        assert_eq!(d.roots.len(), 2);
        let mut tmp = String::new();
        let a = d.member(d.roots[0], "a", text, &mut tmp).unwrap();
        assert_eq!(d.node(a).kind, Kind::Object);
        let arr = d
            .walk(d.roots[0], &parse_path("$.a.b").unwrap(), text, &mut tmp)
            .unwrap();
        assert_eq!(d.source(arr, text), r#"[1, "x\ny", true, null]"#);
        let kinds: Vec<Kind> = d.children(arr).map(|c| d.node(c).kind).collect();
        assert_eq!(kinds, vec![Kind::Number, Kind::String, Kind::True, Kind::Null]);
        let s = d.element(arr, 1).unwrap();
        assert!(d.node(s).escaped);
        assert_eq!(d.source(s, text), r#""x\ny""#);
        let c = d.member(d.roots[0], "c", text, &mut tmp).unwrap();
        assert_eq!(d.source(c, text), "-1.5e3");
        assert!(
            d.member(d.roots[0], "A", text, &mut tmp).is_none(),
            "keys are case-sensitive"
        );
        assert_eq!(d.source(d.member(d.roots[1], "a", text, &mut tmp).unwrap(), text), "2");
    }

    #[test]
    fn last_duplicate_key_wins_and_escaped_keys_match() {
        let text = r#"{"k": 1, "\u006b": 2}"#;
        let d = parse(text).unwrap();
        let mut tmp = String::new();
        let k = d.member(d.roots[0], "k", text, &mut tmp).unwrap();
        assert_eq!(d.source(k, text), "2");
    }

    #[test]
    fn rejects_invalid_json() {
        for bad in [
            "{",
            "[1,]",
            "{\"a\":}",
            "{\"a\" 1}",
            "01",
            "1.",
            "-",
            "1e",
            "tru",
            "\"abc",
            "\"\\x\"",
            "\"\u{1}\"",
            "{a:1}",
            "[1 2]",
            "\"\\ud800\"",
            "\"\\udc00\"",
            "{\"a\":1,}",
            "nul",
            "+1",
            ".5",
        ] {
            assert!(parse(bad).is_err(), "{bad:?} must be rejected");
        }
        let deep = "[".repeat(200) + &"]".repeat(200);
        assert!(parse(&deep).is_err());
        let ok_deep = "[".repeat(100) + &"]".repeat(100);
        assert!(parse(&ok_deep).is_ok());
    }

    #[test]
    fn accepts_what_serde_json_accepts_on_samples() {
        for good in [
            "",
            "  ",
            "0",
            "-0.0e+1",
            "\"\\ud83d\\ude00\"",
            "[]",
            "{}",
            "1 2 3",
            "{\"a\":[{},{\"b\":null}]}",
        ] {
            assert!(parse(good).is_ok(), "{good:?} must parse");
        }
    }

    #[test]
    fn unescapes() {
        let mut out = String::new();
        unescape_into(r#"a\"b\\c\/d\b\f\n\r\t\u00e9\ud83d\ude00z"#, &mut out);
        assert_eq!(out, "a\"b\\c/d\u{8}\u{c}\n\r\té😀z");
        out.clear();
        unescape_into("\\", &mut out);
        assert_eq!(out, "\u{FFFD}");
    }

    #[test]
    fn parses_paths() {
        assert_eq!(parse_path("$").unwrap(), vec![]);
        assert_eq!(
            parse_path("$.a.b").unwrap(),
            vec![Seg::Key("a".into()), Seg::Key("b".into())]
        );
        assert_eq!(
            parse_path("$.arr[0:].x").unwrap(),
            vec![Seg::Key("arr".into()), Seg::All, Seg::Key("x".into())]
        );
        assert_eq!(parse_path("$.arr[*]").unwrap(), vec![Seg::Key("arr".into()), Seg::All]);
        assert_eq!(
            parse_path("$.arr[2]").unwrap(),
            vec![Seg::Key("arr".into()), Seg::Index(2)]
        );
        assert_eq!(
            parse_path("$['a.b'][\"c]\"]").unwrap(),
            vec![Seg::Key("a.b".into()), Seg::Key("c]".into())]
        );
        assert!(parse_path("a.b").is_err());
        assert!(parse_path("$..a").is_err());
        assert!(parse_path("$.a[1:3]").is_err());
        assert!(parse_path("$.a[").is_err());
    }

    /// Rebuilds a serde_json value from the arena (for comparisons).
    fn to_value(d: &Doc, i: u32, text: &str) -> serde_json::Value {
        use serde_json::Value;
        let n = d.node(i);
        let raw = &text[n.start as usize..n.end as usize];
        match n.kind {
            Kind::Null => Value::Null,
            Kind::True => Value::Bool(true),
            Kind::False => Value::Bool(false),
            Kind::Number => serde_json::from_str(raw).unwrap(),
            Kind::String => {
                let mut s = String::new();
                unescape_into(raw, &mut s);
                Value::String(s)
            }
            Kind::Array => Value::Array(d.children(i).map(|c| to_value(d, c, text)).collect()),
            Kind::Object => {
                let mut m = serde_json::Map::new();
                let mut tmp = String::new();
                for c in d.children(i) {
                    let k = d.node(c);
                    tmp.clear();
                    unescape_into(&text[k.key_start as usize..k.key_end as usize], &mut tmp);
                    m.insert(tmp.clone(), to_value(d, c, text));
                }
                Value::Object(m)
            }
        }
    }

    fn arb_json() -> impl proptest::strategy::Strategy<Value = serde_json::Value> {
        use proptest::prelude::*;
        use serde_json::Value;
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<f64>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(Value::from),
            ".{0,8}".prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 32, 6, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                proptest::collection::btree_map(".{0,6}", inner, 0..6)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest::proptest! {
        #[test]
        fn parses_every_valid_document_exactly(v in arb_json(), pretty in proptest::prelude::any::<bool>()) {
            let text = if pretty { serde_json::to_string_pretty(&v).unwrap() } else { serde_json::to_string(&v).unwrap() };
            let d = parse(&text).unwrap();
            proptest::prop_assert_eq!(d.roots.len(), 1);
            // Numbers compared through serde_json's own number parser (not exactly
            // rounding without its float_roundtrip feature).
            let expected: serde_json::Value = serde_json::from_str(&text).unwrap();
            proptest::prop_assert_eq!(to_value(&d, d.roots[0], &text), expected);
            proptest::prop_assert_eq!(d.source(d.roots[0], &text), text.as_str());
        }

        #[test]
        fn mutated_documents_get_serde_json_verdict(
            v in arb_json(),
            at in proptest::prelude::any::<proptest::sample::Index>(),
            byte in proptest::sample::select(b"{}[]\",:0123456789.eE+-\\ tnrufalse\x01".to_vec()),
            delete in proptest::prelude::any::<bool>(),
        ) {
            let mut bytes = serde_json::to_vec(&v).unwrap();
            let i = at.index(bytes.len() + 1);
            if delete && i < bytes.len() { bytes.remove(i); } else { bytes.insert(i, byte); }
            if let Ok(s) = std::str::from_utf8(&bytes) {
                let mine = parse(s).map(|d| d.roots.len() == 1);
                match serde_json::from_str::<serde_json::Value>(s) {
                    Ok(theirs) => {
                        proptest::prop_assert_eq!(&mine, &Ok(true), "serde_json accepts {:?}", s);
                        let d = parse(s).unwrap();
                        proptest::prop_assert_eq!(to_value(&d, d.roots[0], s), theirs);
                    }
                    Err(e) if e.to_string().contains("out of range") => {}
                    Err(_) => proptest::prop_assert!(mine != Ok(true), "the parser accepts {:?}, serde_json does not", s),
                }
            }
        }

        #[test]
        fn agrees_with_serde_json(s in "[\\[\\]{}\",:0-9a-fnrtu.eE+\\- \\\\]{0,24}") {
            let mine = parse(&s).map(|d| d.roots.len() == 1).unwrap_or(false);
            match serde_json::from_str::<serde_json::Value>(&s) {
                Ok(_) => proptest::prop_assert!(mine, "serde_json accepts {:?}, the parser does not", s),
                // serde_json rejects numbers beyond f64 (1e999); the parser keeps their text.
                Err(e) if e.to_string().contains("out of range") => {}
                Err(_) => proptest::prop_assert!(!mine, "the parser accepts {:?}, serde_json does not", s),
            }
        }

        #[test]
        fn never_panics(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64)) {
            if let Ok(s) = std::str::from_utf8(&bytes) {
                let _ = parse(s);
            }
            let mut out = String::new();
            unescape_into(&String::from_utf8_lossy(&bytes), &mut out);
        }
    }
}
