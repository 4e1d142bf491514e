//! Python `re` dialect → Rust regex translation.
//!
//! Fail2Ban filters are Python regular expressions. This module parses the
//! Python syntax into a small AST and re-emits it for either the linear-time
//! `regex` crate or, when the pattern truly needs backtracking features
//! (look-around, back-references, conditionals, atomic groups), for
//! `fancy-regex`. It also expands Fail2Ban's `<HOST>`-style tags.

use std::fmt::Write as _;

/// Python regex AST.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) enum Node {
    #[default]
    Empty,
    Lit(char),
    Dot,
    /// A character class already rendered in Rust syntax (`[..]`, `\d`, ...).
    Class(String),
    /// `^`, `$`, `\A`, `\z`, `\b`, `\B`.
    Assert(&'static str),
    Group(Box<Node>, GroupKind),
    Concat(Vec<Node>),
    Alt(Vec<Node>),
    Repeat {
        node: Box<Node>,
        min: u32,
        max: Option<u32>,
        greedy: bool,
    },
    /// Back-reference by group name (numbers are resolved to `#N`).
    Backref(String),
    /// `(?(group)yes|no)`.
    Cond(String, Box<Node>, Box<Node>),
    /// A rewritten tempered token `(?:(?!lit).)*` that a literal starting
    /// with `lit` follows: the text up to the first `lit`, as the regex
    /// `class` (Rust syntax) for the engines and a search for the
    /// backtracker.
    Avoid {
        lit: String,
        class: String,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum GroupKind {
    Capture(Option<String>),
    NonCapture,
    /// Scoped flags, e.g. `(?i:...)`.
    Flags(String),
    Look {
        ahead: bool,
        negate: bool,
    },
    Atomic,
}

/// Which engine a compiled regex runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Engine {
    /// The linear-time `regex` crate (no backtracking, ReDoS-safe).
    Linear,
    /// `fancy-regex` (backtracking with a limit): needed for look-around,
    /// back-references or conditionals.
    Backtracking,
}

impl std::fmt::Display for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Engine::Linear => "regex (linear)",
            Engine::Backtracking => "fancy-regex (backtracking)",
        })
    }
}

/// Parse error with byte offset into the pattern.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ParseError {
    pub pos: usize,
    pub msg: String,
}

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} at offset {}", self.msg, self.pos)
    }
}

/// A parsed Python pattern: AST plus global flags.
#[derive(Debug, Clone)]
pub(crate) struct Parsed {
    pub node: Node,
    /// Global flags (`i`, `s`, `m`, `x`) found as `(?i)` etc.
    pub flags: String,
}

struct Parser<'a> {
    s: &'a str,
    chars: Vec<(usize, char)>,
    i: usize,
    flags: String,
    verbose: bool,
}

pub(crate) fn parse(pattern: &str) -> Result<Parsed, ParseError> {
    let mut p =
        Parser { s: pattern, chars: pattern.char_indices().collect(), i: 0, flags: String::new(), verbose: false };
    // Global verbose flag must be known before parsing.
    if let Some(rest) = pattern.strip_prefix("(?") {
        let fl: String = rest.chars().take_while(|c| c.is_ascii_alphabetic()).collect();
        if rest[fl.len()..].starts_with(')') && fl.contains('x') {
            p.verbose = true;
        }
    }
    let node = p.parse_alt(0)?;
    if p.i < p.chars.len() {
        return Err(p.err("unbalanced parenthesis"));
    }
    Ok(Parsed { node, flags: p.flags })
}

impl Parser<'_> {
    fn pos(&self) -> usize {
        self.chars.get(self.i).map_or(self.s.len(), |c| c.0)
    }
    fn err(&self, msg: &str) -> ParseError {
        ParseError { pos: self.pos(), msg: msg.to_string() }
    }
    fn peek(&self) -> Option<char> {
        self.chars.get(self.i).map(|c| c.1)
    }
    fn peek_at(&self, k: usize) -> Option<char> {
        self.chars.get(self.i + k).map(|c| c.1)
    }
    fn eat(&mut self, c: char) -> bool {
        if self.peek() == Some(c) {
            self.i += 1;
            true
        } else {
            false
        }
    }
    fn rest_starts(&self, lit: &str) -> bool {
        self.s[self.pos()..].starts_with(lit)
    }
    fn skip(&mut self, lit: &str) {
        self.i += lit.chars().count();
    }

    fn parse_alt(&mut self, depth: usize) -> Result<Node, ParseError> {
        if depth > 200 {
            return Err(self.err("pattern nested too deeply"));
        }
        let mut alts = vec![self.parse_concat(depth)?];
        while self.eat('|') {
            alts.push(self.parse_concat(depth)?);
        }
        Ok(if alts.len() == 1 { alts.pop().unwrap() } else { Node::Alt(alts) })
    }

    fn parse_concat(&mut self, depth: usize) -> Result<Node, ParseError> {
        let mut items = Vec::new();
        while let Some(c) = self.peek() {
            if c == '|' || c == ')' {
                break;
            }
            if self.verbose {
                if c.is_whitespace() {
                    self.i += 1;
                    continue;
                }
                if c == '#' {
                    while let Some(c) = self.peek() {
                        self.i += 1;
                        if c == '\n' {
                            break;
                        }
                    }
                    continue;
                }
            }
            let atom = match self.parse_atom(depth)? {
                Some(a) => a,
                None => continue,
            };
            let atom = self.parse_quant(atom)?;
            items.push(atom);
        }
        Ok(match items.len() {
            0 => Node::Empty,
            1 => items.pop().unwrap(),
            _ => Node::Concat(items),
        })
    }

    /// Try to read `{m,n}` at the current position (Python accepts `{,n}`).
    fn try_brace(&mut self) -> Option<(u32, Option<u32>)> {
        let start = self.i;
        if !self.eat('{') {
            return None;
        }
        let mut a = String::new();
        while let Some(c) = self.peek().filter(char::is_ascii_digit) {
            a.push(c);
            self.i += 1;
        }
        let (min, max);
        if self.eat(',') {
            let mut b = String::new();
            while let Some(c) = self.peek().filter(char::is_ascii_digit) {
                b.push(c);
                self.i += 1;
            }
            min = if a.is_empty() { 0 } else { a.parse().ok()? };
            max = if b.is_empty() { None } else { Some(b.parse().ok()?) };
        } else {
            if a.is_empty() {
                self.i = start;
                return None;
            }
            min = a.parse().ok()?;
            max = Some(min);
        }
        if !self.eat('}') {
            self.i = start;
            return None;
        }
        Some((min, max))
    }

    fn parse_quant(&mut self, mut atom: Node) -> Result<Node, ParseError> {
        loop {
            let (min, max) = match self.peek() {
                Some('*') => {
                    self.i += 1;
                    (0, None)
                }
                Some('+') => {
                    self.i += 1;
                    (1, None)
                }
                Some('?') => {
                    self.i += 1;
                    (0, Some(1))
                }
                Some('{') => match self.try_brace() {
                    Some(q) => q,
                    None => return Ok(atom),
                },
                _ => return Ok(atom),
            };
            if let Some(mx) = max
                && mx < min
            {
                return Err(self.err("min repeat greater than max repeat"));
            }
            if matches!(atom, Node::Repeat { .. }) {
                return Err(self.err("multiple repeat"));
            }
            if matches!(atom, Node::Assert(_) | Node::Empty) {
                return Err(self.err("nothing to repeat"));
            }
            let greedy = !self.eat('?');
            if self.peek() == Some('+') {
                return Err(self.err("possessive quantifiers are not supported"));
            }
            atom = Node::Repeat { node: Box::new(atom), min, max, greedy };
        }
    }

    fn read_name(&mut self, end: char) -> Result<String, ParseError> {
        let mut name = String::new();
        loop {
            match self.peek() {
                Some(c) if c == end => {
                    self.i += 1;
                    break;
                }
                Some(c) => {
                    name.push(c);
                    self.i += 1;
                }
                None => return Err(self.err("missing group name terminator")),
            }
        }
        let ident = name.chars().next().is_some_and(|c| c.is_alphabetic() || c == '_')
            && name.chars().all(|c| c.is_alphanumeric() || c == '_');
        let number = !name.is_empty() && name.chars().all(|c| c.is_ascii_digit());
        if !ident && !number {
            return Err(self.err(&format!("bad character in group name {name:?}")));
        }
        Ok(name)
    }

    fn parse_atom(&mut self, depth: usize) -> Result<Option<Node>, ParseError> {
        let c = self.peek().unwrap();
        self.i += 1;
        Ok(Some(match c {
            '.' => Node::Dot,
            '^' => Node::Assert("^"),
            '$' => Node::Assert("$"),
            '[' => self.parse_class()?,
            '\\' => self.parse_escape()?,
            '(' => return self.parse_group(depth),
            '*' | '+' | '?' => return Err(self.err("nothing to repeat")),
            '{' => {
                self.i -= 1;
                if self.try_brace().is_some() {
                    return Err(self.err("nothing to repeat"));
                }
                self.i += 1;
                Node::Lit('{')
            }
            c => Node::Lit(c),
        }))
    }

    fn parse_group(&mut self, depth: usize) -> Result<Option<Node>, ParseError> {
        let kind;
        if self.eat('?') {
            if self.rest_starts("P<") {
                self.skip("P<");
                let name = self.read_name('>')?;
                kind = GroupKind::Capture(Some(name));
            } else if self.rest_starts("P=") {
                self.skip("P=");
                let name = self.read_name(')')?;
                return Ok(Some(Node::Backref(name)));
            } else if self.rest_starts("<=") || self.rest_starts("<!") {
                let negate = self.peek_at(1) == Some('!');
                self.skip("<=");
                kind = GroupKind::Look { ahead: false, negate };
            } else if self.eat('<') {
                let name = self.read_name('>')?;
                kind = GroupKind::Capture(Some(name));
            } else if self.eat(':') {
                kind = GroupKind::NonCapture;
            } else if self.eat('=') {
                kind = GroupKind::Look { ahead: true, negate: false };
            } else if self.eat('!') {
                kind = GroupKind::Look { ahead: true, negate: true };
            } else if self.eat('>') {
                kind = GroupKind::Atomic;
            } else if self.eat('#') {
                while let Some(c) = self.peek() {
                    self.i += 1;
                    if c == ')' {
                        return Ok(None);
                    }
                }
                return Err(self.err("missing ), unterminated comment"));
            } else if self.eat('(') {
                let name = self.read_name(')')?;
                let body = self.parse_alt(depth + 1)?;
                if !self.eat(')') {
                    return Err(self.err("missing ), unterminated subpattern"));
                }
                let (yes, no) = match body {
                    Node::Alt(mut v) => {
                        if v.len() > 2 {
                            return Err(self.err("conditional backref with more than two branches"));
                        }
                        let no = v.pop().unwrap();
                        (v.pop().unwrap(), no)
                    }
                    n => (n, Node::Empty),
                };
                let name = self.group_ref(&name);
                return Ok(Some(Node::Cond(name, Box::new(yes), Box::new(no))));
            } else {
                // flags: (?aiLmsux) global or (?aiLmsux-imsx:...) scoped
                let mut on = String::new();
                let mut off = String::new();
                let mut neg = false;
                loop {
                    match self.peek() {
                        Some(c) if "aiLmsux".contains(c) => {
                            if neg {
                                off.push(c)
                            } else {
                                on.push(c)
                            }
                            self.i += 1;
                        }
                        Some('-') => {
                            neg = true;
                            self.i += 1;
                        }
                        Some(')') if !neg => {
                            self.i += 1;
                            for c in on.chars() {
                                if "imsx".contains(c) && !self.flags.contains(c) {
                                    self.flags.push(c);
                                }
                            }
                            return Ok(None);
                        }
                        Some(':') => {
                            self.i += 1;
                            break;
                        }
                        _ => return Err(self.err("unknown extension ?")),
                    }
                }
                let mut f: String = on.chars().filter(|c| "imsx".contains(*c)).collect();
                let off: String = off.chars().filter(|c| "imsx".contains(*c)).collect();
                if !off.is_empty() {
                    f.push('-');
                    f.push_str(&off);
                }
                kind = if f.is_empty() { GroupKind::NonCapture } else { GroupKind::Flags(f) };
            }
        } else {
            kind = GroupKind::Capture(None);
        }
        let body = self.parse_alt(depth + 1)?;
        if !self.eat(')') {
            return Err(self.err("missing ), unterminated subpattern"));
        }
        Ok(Some(Node::Group(Box::new(body), kind)))
    }

    /// Resolve a numeric group reference to `#N` or keep the name.
    fn group_ref(&self, name: &str) -> String {
        if name.chars().all(|c| c.is_ascii_digit()) { format!("#{name}") } else { name.to_string() }
    }

    fn parse_escape(&mut self) -> Result<Node, ParseError> {
        let c = match self.peek() {
            Some(c) => c,
            None => return Err(self.err("bad escape (end of pattern)")),
        };
        self.i += 1;
        Ok(match c {
            'd' | 'D' | 's' | 'S' | 'w' | 'W' => Node::Class(format!("\\{c}")),
            'b' => Node::Assert("\\b"),
            'B' => Node::Assert("\\B"),
            'A' => Node::Assert("\\A"),
            'Z' => Node::Assert("\\z"),
            '1'..='9' => {
                let mut n = String::from(c);
                if let Some(d) = self.peek().filter(char::is_ascii_digit) {
                    n.push(d);
                    self.i += 1;
                }
                Node::Backref(format!("#{n}"))
            }
            _ => Node::Lit(self.escape_char(c)?),
        })
    }

    /// Escapes valid both inside and outside classes that denote one char.
    fn escape_char(&mut self, c: char) -> Result<char, ParseError> {
        let hex = |p: &mut Self, n: usize| -> Result<char, ParseError> {
            let mut v = 0u32;
            for _ in 0..n {
                let d = p.peek().and_then(|c| c.to_digit(16)).ok_or_else(|| p.err("incomplete escape"))?;
                v = v * 16 + d;
                p.i += 1;
            }
            char::from_u32(v).ok_or_else(|| p.err("bad escape value"))
        };
        Ok(match c {
            'n' => '\n',
            't' => '\t',
            'r' => '\r',
            'f' => '\x0c',
            'v' => '\x0b',
            'a' => '\x07',
            'x' => hex(self, 2)?,
            'u' => hex(self, 4)?,
            'U' => hex(self, 8)?,
            '0' => {
                let mut v = 0u32;
                for _ in 0..2 {
                    match self.peek().and_then(|c| c.to_digit(8)) {
                        Some(d) => {
                            v = v * 8 + d;
                            self.i += 1;
                        }
                        None => break,
                    }
                }
                char::from_u32(v).unwrap_or('\0')
            }
            c if c.is_ascii_alphanumeric() => {
                return Err(self.err(&format!("bad escape \\{c}")));
            }
            c => c,
        })
    }

    fn parse_class(&mut self) -> Result<Node, ParseError> {
        let mut out = String::from("[");
        if self.eat('^') {
            out.push('^');
        }
        let mut first = true;
        let mut empty = true;
        loop {
            let c = match self.peek() {
                Some(c) => c,
                None => return Err(self.err("unterminated character set")),
            };
            if c == ']' && !first {
                self.i += 1;
                break;
            }
            first = false;
            self.i += 1;
            // one item: char, escape class or range
            let lo = if c == '\\' {
                let e = self.peek().ok_or_else(|| self.err("bad escape"))?;
                self.i += 1;
                match e {
                    'd' | 'D' | 's' | 'S' | 'w' | 'W' => {
                        let _ = write!(out, "\\{e}");
                        empty = false;
                        continue;
                    }
                    'b' => '\x08',
                    e => self.escape_char(e)?,
                }
            } else {
                c
            };
            // range?
            if self.peek() == Some('-') && self.peek_at(1).is_some_and(|c| c != ']') {
                self.i += 1;
                let c2 = self.peek().unwrap();
                self.i += 1;
                let hi = if c2 == '\\' {
                    let e = self.peek().ok_or_else(|| self.err("bad escape"))?;
                    self.i += 1;
                    if "dDsSwW".contains(e) {
                        return Err(self.err("bad character range"));
                    }
                    if e == 'b' { '\x08' } else { self.escape_char(e)? }
                } else {
                    c2
                };
                if hi < lo {
                    return Err(self.err("bad character range"));
                }
                push_class_char(&mut out, lo);
                out.push('-');
                push_class_char(&mut out, hi);
            } else {
                push_class_char(&mut out, lo);
            }
            empty = false;
        }
        if empty {
            return Err(self.err("empty character set"));
        }
        out.push(']');
        Ok(Node::Class(out))
    }
}

fn push_class_char(out: &mut String, c: char) {
    if c.is_ascii_alphanumeric() || c == ' ' || (!c.is_ascii() && !c.is_whitespace()) {
        out.push(c);
    } else if regex_syntax::is_meta_character(c) {
        out.push('\\');
        out.push(c);
    } else if c.is_ascii_graphic() {
        out.push(c);
    } else {
        let _ = write!(out, "\\x{{{:x}}}", c as u32);
    }
}

fn push_lit(out: &mut String, c: char) {
    if c.is_ascii_alphanumeric() || c == ' ' || (!c.is_ascii() && !c.is_whitespace()) {
        out.push(c);
    } else if regex_syntax::is_meta_character(c) {
        out.push('\\');
        out.push(c);
    } else if c.is_ascii_graphic() {
        out.push(c);
    } else {
        let _ = write!(out, "\\x{{{:x}}}", c as u32);
    }
}

impl Node {
    /// Whether the node needs a backtracking engine.
    pub(crate) fn is_fancy(&self) -> bool {
        match self {
            Node::Backref(_) | Node::Cond(..) => true,
            Node::Group(_, GroupKind::Look { .. } | GroupKind::Atomic) => true,
            Node::Group(n, _) => n.is_fancy(),
            Node::Repeat { node, .. } => node.is_fancy(),
            Node::Concat(v) | Node::Alt(v) => v.iter().any(Node::is_fancy),
            _ => false,
        }
    }

    /// Render to Rust syntax. `fancy` selects fancy-regex syntax for
    /// backtracking constructs; otherwise they are relaxed to a superset
    /// (look-arounds dropped, conditionals → alternation, back-references →
    /// the referenced group's pattern) which is only valid as a prefilter.
    pub(crate) fn render(&self, out: &mut String, fancy: bool, ctx: &RenderCtx<'_>) {
        match self {
            Node::Empty => {}
            Node::Lit(c) => push_lit(out, *c),
            Node::Dot => out.push('.'),
            Node::Class(s) => out.push_str(s),
            Node::Avoid { class, .. } => {
                out.push_str("(?:");
                out.push_str(class);
                out.push(')');
            }
            Node::Assert(a) => out.push_str(a),
            Node::Group(n, kind) => match kind {
                GroupKind::Capture(name) => {
                    if ctx.strip_captures {
                        out.push_str("(?:");
                    } else if let Some(name) = name {
                        let _ = write!(out, "(?P<{name}>");
                    } else {
                        out.push('(');
                    }
                    n.render(out, fancy, ctx);
                    out.push(')');
                }
                GroupKind::NonCapture => {
                    out.push_str("(?:");
                    n.render(out, fancy, ctx);
                    out.push(')');
                }
                GroupKind::Flags(f) => {
                    let _ = write!(out, "(?{f}:");
                    n.render(out, fancy, ctx);
                    out.push(')');
                }
                GroupKind::Look { ahead, negate } => {
                    if fancy {
                        out.push_str(match (ahead, negate) {
                            (true, false) => "(?=",
                            (true, true) => "(?!",
                            (false, false) => "(?<=",
                            (false, true) => "(?<!",
                        });
                        n.render(out, fancy, ctx);
                        out.push(')');
                    }
                }
                GroupKind::Atomic => {
                    out.push_str(if fancy { "(?>" } else { "(?:" });
                    n.render(out, fancy, ctx);
                    out.push(')');
                }
            },
            Node::Concat(v) => {
                for n in v {
                    n.render(out, fancy, ctx);
                }
            }
            Node::Alt(v) => {
                // Top-level alternation inside concatenation is always
                // wrapped by its parent group, so plain `|` is fine here.
                for (i, n) in v.iter().enumerate() {
                    if i > 0 {
                        out.push('|');
                    }
                    n.render(out, fancy, ctx);
                }
            }
            Node::Repeat { node, min, max, greedy } => {
                let needs_group = !matches!(**node, Node::Lit(_) | Node::Dot | Node::Class(_) | Node::Group(..))
                    || matches!(**node, Node::Group(_, GroupKind::Look { .. }) if !fancy);
                if needs_group {
                    out.push_str("(?:");
                    node.render(out, fancy, ctx);
                    out.push(')');
                } else {
                    node.render(out, fancy, ctx);
                }
                match (min, max) {
                    (0, None) => out.push('*'),
                    (1, None) => out.push('+'),
                    (0, Some(1)) => out.push('?'),
                    (m, None) => {
                        let _ = write!(out, "{{{m},}}");
                    }
                    (m, Some(x)) if m == x => {
                        let _ = write!(out, "{{{m}}}");
                    }
                    (m, Some(x)) => {
                        let _ = write!(out, "{{{m},{x}}}");
                    }
                }
                if !greedy {
                    out.push('?');
                }
            }
            Node::Backref(name) => {
                if fancy {
                    if let Some(n) = name.strip_prefix('#') {
                        let _ = write!(out, "\\{n}");
                    } else {
                        let _ = write!(out, "\\k<{name}>");
                    }
                } else {
                    // relax: the referenced group's own pattern (superset)
                    out.push_str("(?:");
                    if let Some(g) = ctx.root.find_group(name, &mut 0) {
                        let sub = RenderCtx { root: ctx.root, strip_captures: true };
                        g.render(out, false, &sub);
                    } else {
                        out.push_str("(?s:.*?)");
                    }
                    out.push(')');
                }
            }
            Node::Cond(name, yes, no) => {
                if fancy {
                    if let Some(n) = name.strip_prefix('#') {
                        let _ = write!(out, "(?({n})");
                    } else {
                        let _ = write!(out, "(?(<{name}>)");
                    }
                    yes.render(out, fancy, ctx);
                    out.push('|');
                    no.render(out, fancy, ctx);
                    out.push(')');
                } else {
                    out.push_str("(?:");
                    yes.render(out, fancy, ctx);
                    out.push('|');
                    no.render(out, fancy, ctx);
                    out.push(')');
                }
            }
        }
    }

    /// Find a capture group body by name or `#N` (N counted from 1).
    fn find_group(&self, name: &str, counter: &mut usize) -> Option<&Node> {
        match self {
            Node::Group(n, GroupKind::Capture(gname)) => {
                *counter += 1;
                let hit = match name.strip_prefix('#') {
                    Some(num) => num.parse::<usize>().ok() == Some(*counter),
                    None => gname.as_deref() == Some(name),
                };
                if hit {
                    return Some(n);
                }
                n.find_group(name, counter)
            }
            Node::Group(n, _) => n.find_group(name, counter),
            Node::Repeat { node, .. } => node.find_group(name, counter),
            Node::Concat(v) | Node::Alt(v) => v.iter().find_map(|n| n.find_group(name, counter)),
            Node::Cond(_, a, b) => a.find_group(name, counter).or_else(|| b.find_group(name, counter)),
            _ => None,
        }
    }
}

pub(crate) struct RenderCtx<'a> {
    pub root: &'a Node,
    pub strip_captures: bool,
}

/// Render a parsed pattern. Returns (pattern, engine).
pub(crate) fn render(p: &Parsed, multiline: bool, force_relaxed: bool) -> (String, Engine) {
    let fancy = !force_relaxed && p.node.is_fancy();
    let mut out = String::new();
    let mut flags = p.flags.replace('x', "");
    if multiline && !flags.contains('m') {
        flags.push('m');
    }
    if !flags.is_empty() {
        let _ = write!(out, "(?{flags})");
    }
    let ctx = RenderCtx { root: &p.node, strip_captures: false };
    p.node.render(&mut out, fancy, &ctx);
    (out, if fancy { Engine::Backtracking } else { Engine::Linear })
}

// ---------------------------------------------------------------------------
// Rewriting backtracking constructs into linear ones (exactly equivalent).

/// Try to turn a pattern that needs backtracking into an equivalent one the
/// linear engine accepts: conditionals on optional/alternative groups are
/// expanded into alternations, and "tempered" tokens `(?:(?!LIT).)*` whose
/// end is fixed by what follows (`LIT` itself, or `$`) become plain regular
/// expressions. Capture groups duplicated by the expansion are renamed
/// `name__dN` (see [`base_group_name`]). Returns `None` if not possible.
pub(crate) fn linearize(node: &Node) -> Option<Node> {
    let mut n = expand_conditionals(node.clone(), 0)?;
    rewrite_tempered(&mut n, &Follow::Unknown);
    if n.is_fancy() {
        return None;
    }
    let mut seen = std::collections::HashMap::new();
    dedup_names(&mut n, &mut seen);
    Some(n)
}

/// Strip the `__dN` suffix added by [`linearize`].
pub(crate) fn base_group_name(name: &str) -> &str {
    match name.rfind("__d") {
        Some(p) if name[p + 3..].chars().all(|c| c.is_ascii_digit()) && p + 3 < name.len() => &name[..p],
        _ => name,
    }
}

fn dedup_names(n: &mut Node, seen: &mut std::collections::HashMap<String, usize>) {
    match n {
        Node::Group(b, kind) => {
            if let GroupKind::Capture(Some(name)) = kind {
                let c = seen.entry(name.clone()).or_insert(0);
                *c += 1;
                if *c > 1 {
                    *name = format!("{name}__d{c}");
                }
            }
            dedup_names(b, seen);
        }
        Node::Repeat { node, .. } => dedup_names(node, seen),
        Node::Concat(v) | Node::Alt(v) => v.iter_mut().for_each(|x| dedup_names(x, seen)),
        Node::Cond(_, a, b) => {
            dedup_names(a, seen);
            dedup_names(b, seen);
        }
        _ => {}
    }
}

fn first_cond(n: &Node) -> Option<&str> {
    match n {
        Node::Cond(name, ..) => Some(name),
        Node::Group(b, _) => first_cond(b),
        Node::Repeat { node, .. } => first_cond(node),
        Node::Concat(v) | Node::Alt(v) => v.iter().find_map(first_cond),
        _ => None,
    }
}

fn defines_group(n: &Node, name: &str) -> bool {
    match n {
        Node::Group(_, GroupKind::Capture(Some(g))) if g == name => true,
        Node::Group(b, _) => defines_group(b, name),
        Node::Repeat { node, .. } => defines_group(node, name),
        Node::Concat(v) | Node::Alt(v) => v.iter().any(|x| defines_group(x, name)),
        Node::Cond(_, a, b) => defines_group(a, name) || defines_group(b, name),
        _ => false,
    }
}

/// Whether `name` surely participates whenever `n` matches.
fn surely_defines(n: &Node, name: &str) -> bool {
    match n {
        Node::Group(_, GroupKind::Capture(Some(g))) if g == name => true,
        Node::Group(b, GroupKind::Capture(_) | GroupKind::NonCapture | GroupKind::Flags(_)) => surely_defines(b, name),
        Node::Concat(v) => v.iter().any(|x| surely_defines(x, name)),
        Node::Alt(v) => v.iter().all(|x| surely_defines(x, name)),
        Node::Repeat { node, min, .. } if *min >= 1 => surely_defines(node, name),
        _ => false,
    }
}

fn subst_cond(n: &mut Node, name: &str, present: bool) {
    match n {
        Node::Cond(c, yes, no) if c == name => {
            let b = if present { std::mem::take(&mut **yes) } else { std::mem::take(&mut **no) };
            *n = Node::Group(Box::new(b), GroupKind::NonCapture);
            subst_cond(n, name, present);
        }
        Node::Group(b, _) => subst_cond(b, name, present),
        Node::Repeat { node, .. } => subst_cond(node, name, present),
        Node::Concat(v) | Node::Alt(v) => v.iter_mut().for_each(|x| subst_cond(x, name, present)),
        Node::Cond(_, a, b) => {
            subst_cond(a, name, present);
            subst_cond(b, name, present);
        }
        _ => {}
    }
}

fn expand_conditionals(n: Node, depth: usize) -> Option<Node> {
    if depth > 8 {
        return None;
    }
    let Some(name) = first_cond(&n).map(str::to_string) else { return Some(n) };
    if name.starts_with('#') {
        return None;
    }
    // find the concatenation holding both the group and (later) the condition
    let out = expand_in(n, &name)?;
    expand_conditionals(out, depth + 1)
}

/// Expand the first conditional on `name` somewhere in `n`.
fn expand_in(n: Node, name: &str) -> Option<Node> {
    match n {
        Node::Concat(items) => {
            let j = items.iter().position(|x| first_cond(x) == Some(name));
            let i = items.iter().position(|x| defines_group(x, name));
            match (i, j) {
                (Some(i), Some(j)) if i < j => split_concat(items, i, name),
                (_, Some(j)) if i.is_none_or(|i| i == j) => {
                    // both inside the same element: recurse into it
                    let mut items = items;
                    let e = std::mem::take(&mut items[j]);
                    items[j] = expand_in(e, name)?;
                    Some(Node::Concat(items))
                }
                _ => None,
            }
        }
        Node::Group(b, k) => Some(Node::Group(Box::new(expand_in(*b, name)?), k)),
        Node::Alt(v) => {
            let mut out = Vec::new();
            for x in v {
                out.push(if first_cond(&x) == Some(name) { expand_in(x, name)? } else { x });
            }
            Some(Node::Alt(out))
        }
        // a conditional on a group that is not defined before it: never set
        Node::Cond(c, yes, no) => {
            let mut n = Node::Cond(c, yes, no);
            subst_cond(&mut n, name, false);
            Some(n)
        }
        _ => None,
    }
}

fn split_concat(items: Vec<Node>, i: usize, name: &str) -> Option<Node> {
    let variants: Vec<(Node, bool)> = match &items[i] {
        Node::Repeat { node, min: 0, max: Some(1), greedy } if surely_defines(node, name) => {
            let with = ((**node).clone(), true);
            let without = (Node::Empty, false);
            if *greedy { vec![with, without] } else { vec![without, with] }
        }
        Node::Group(b, kind @ (GroupKind::Capture(_) | GroupKind::NonCapture)) if !surely_defines(&items[i], name) => {
            let Node::Alt(branches) = &**b else { return None };
            let mut v = Vec::new();
            for br in branches {
                let sure = surely_defines(br, name);
                if !sure && defines_group(br, name) {
                    return None;
                }
                v.push((Node::Group(Box::new(br.clone()), kind.clone()), sure));
            }
            v
        }
        x if surely_defines(x, name) => vec![(x.clone(), true)],
        _ => return None,
    };
    let mut alts = Vec::new();
    for (elem, present) in variants {
        let mut v = items.clone();
        v[i] = elem;
        for x in v[i + 1..].iter_mut() {
            subst_cond(x, name, present);
        }
        alts.push(Node::Concat(v));
    }
    Some(Node::Group(Box::new(Node::Alt(alts)), GroupKind::NonCapture))
}

#[derive(Debug, Clone)]
enum Follow {
    Unknown,
    End,
    Lit(String),
}

/// `(?:(?!LIT).)` inside a repetition: returns LIT.
fn tempered_literal(n: &Node) -> Option<String> {
    let Node::Repeat { node, min: 0, max: None, .. } = n else { return None };
    let Node::Group(b, GroupKind::NonCapture) = &**node else { return None };
    let Node::Concat(v) = &**b else { return None };
    if v.len() != 2 || v[1] != Node::Dot {
        return None;
    }
    let Node::Group(look, GroupKind::Look { ahead: true, negate: true }) = &v[0] else { return None };
    let lit: String = match &**look {
        Node::Concat(l) => {
            l.iter().map(|x| if let Node::Lit(c) = x { Some(*c) } else { None }).collect::<Option<_>>()?
        }
        Node::Lit(c) => c.to_string(),
        _ => return None,
    };
    (!lit.is_empty() && !lit.contains('\n')).then_some(lit)
}

fn rewrite_tempered(n: &mut Node, follow: &Follow) {
    if let Some(lit) = tempered_literal(n) {
        match follow {
            Follow::End => *n = Node::Group(Box::new(Node::Class(avoid_literal(&lit, false))), GroupKind::NonCapture),
            Follow::Lit(s) if s.starts_with(&lit) => {
                let class = avoid_literal(&lit, true);
                *n = Node::Avoid { lit, class };
            }
            _ => {}
        }
        return;
    }
    match n {
        Node::Group(b, GroupKind::Capture(_) | GroupKind::NonCapture) => rewrite_tempered(b, follow),
        Node::Group(b, _) => rewrite_tempered(b, &Follow::Unknown),
        Node::Alt(v) => v.iter_mut().for_each(|x| rewrite_tempered(x, follow)),
        Node::Repeat { node, .. } => rewrite_tempered(node, &Follow::Unknown),
        Node::Cond(_, a, b) => {
            rewrite_tempered(a, &Follow::Unknown);
            rewrite_tempered(b, &Follow::Unknown);
        }
        Node::Concat(v) => {
            for k in 0..v.len() {
                // literal run after k, continued by the parent's follow
                let mut lit = String::new();
                let mut f = None;
                for x in &v[k + 1..] {
                    match x {
                        Node::Lit(c) => lit.push(*c),
                        Node::Assert("$") | Node::Assert("\\z") if lit.is_empty() => {
                            f = Some(Follow::End);
                            break;
                        }
                        _ => {
                            f = Some(if lit.is_empty() { Follow::Unknown } else { Follow::Lit(lit.clone()) });
                            break;
                        }
                    }
                }
                let f = f.unwrap_or_else(|| match follow {
                    Follow::Lit(p) => Follow::Lit(format!("{lit}{p}")),
                    Follow::End if lit.is_empty() => Follow::End,
                    Follow::Unknown | Follow::End if !lit.is_empty() => Follow::Lit(lit.clone()),
                    other => other.clone(),
                });
                rewrite_tempered(&mut v[k], &f);
            }
        }
        _ => {}
    }
}

/// A regex (Rust syntax) for the strings that do not contain `lit` (and no
/// newline). With `before_lit`, for the strings `s` such that `s` followed
/// by `lit` has its first occurrence of `lit` at the end (i.e. `s + lit[..m-1]`
/// contains no `lit`). Built from the KMP automaton by state elimination.
fn avoid_literal(lit: &str, before_lit: bool) -> String {
    let l: Vec<char> = lit.chars().collect();
    let m = l.len();
    let mut alphabet: Vec<char> = l.clone();
    alphabet.sort_unstable();
    alphabet.dedup();
    // KMP transition: state k (matched prefix length) on input class
    let step = |k: usize, c: Option<char>| -> usize {
        let Some(c) = c else { return 0 };
        let mut s: Vec<char> = l[..k].to_vec();
        s.push(c);
        for len in (0..=s.len().min(m)).rev() {
            if s[s.len() - len..] == l[..len] {
                return len;
            }
        }
        0
    };
    let other = {
        let mut s = String::from("[^\\n");
        for c in &alphabet {
            push_class_char(&mut s, *c);
        }
        s.push(']');
        s
    };
    let lit_of = |c: char| {
        let mut s = String::new();
        push_lit(&mut s, c);
        s
    };
    let accepting: Vec<bool> = (0..m)
        .map(|k| {
            if !before_lit {
                return true;
            }
            let mut st = k;
            for &c in &l[..m - 1] {
                st = step(st, Some(c));
                if st == m {
                    return false;
                }
            }
            true
        })
        .collect();
    let f = m; // final pseudo-state
    let n = m + 1;
    let mut r: Vec<Vec<Option<String>>> = vec![vec![None; n]; n];
    let union = |a: Option<String>, b: String| -> Option<String> {
        Some(match a {
            None => b,
            Some(a) if a == b => a,
            Some(a) => format!("(?:{a}|{b})"),
        })
    };
    for k in 0..m {
        let mut classes: Vec<(Option<char>, String)> = alphabet.iter().map(|c| (Some(*c), lit_of(*c))).collect();
        classes.push((None, other.clone()));
        for (c, re) in classes {
            let t = step(k, c);
            if t < m {
                r[k][t] = union(r[k][t].take(), re);
            }
        }
        if accepting[k] {
            r[k][f] = union(r[k][f].take(), String::new());
        }
    }
    let star = |x: &Option<String>| -> String {
        match x {
            None => String::new(),
            Some(s) if s.is_empty() => String::new(),
            Some(s) => format!("(?:{s})*"),
        }
    };
    for s in (1..m).rev() {
        let lp = star(&r[s][s]);
        let ins: Vec<usize> = (0..s).filter(|&i| r[i][s].is_some()).collect();
        let outs: Vec<usize> = (0..n).filter(|&j| j != s && (j < s || j == f) && r[s][j].is_some()).collect();
        for &i in &ins {
            for &j in &outs {
                let path = format!("(?:{}{}{})", r[i][s].as_deref().unwrap(), lp, r[s][j].as_deref().unwrap());
                r[i][j] = union(r[i][j].take(), path);
            }
        }
        for row in r.iter_mut() {
            row[s] = None;
        }
        r[s] = vec![None; n];
    }
    format!("(?:{}{})", star(&r[0][0]), r[0][f].as_deref().unwrap_or("[^\\s\\S]"))
}

// ---------------------------------------------------------------------------
// Fail2Ban tags

/// IPv4 address as Fail2Ban writes it (`IPAddr.IP_4_RE`).
pub(crate) const IP4_RE: &str = r"(?:\d{1,3}\.){3}\d{1,3}";
/// Fail2Ban's `IPAddr.IP_6_RE` ends in `(?<=:):`; the look-behind always holds
/// there (every repetition of the first group ends in `:`), so it is dropped.
pub(crate) const IP6_RE: &str = r"(?:[0-9a-fA-F]{1,4}::?|::){1,7}(?:[0-9a-fA-F]{1,4}|:)";

pub(crate) fn host_re(kind: &str, use_dns: bool) -> String {
    let ip4 = format!("(?:::f{{4,6}}:)?(?P<ip4>{IP4_RE})");
    let ip6 = format!("(?P<ip6>{IP6_RE})");
    let dns = r"(?P<dns>[\w\-.^_]*\w)".to_string();
    let addr = format!(r"\[?(?:{ip4}|{ip6})\]?");
    match kind {
        "IP4" => ip4,
        "IP6" => ip6,
        "DNS" => dns,
        "ADDR" => addr,
        "HOST" => {
            if use_dns {
                format!("(?:{addr}|{dns})")
            } else {
                addr
            }
        }
        "CIDR" => r"(?P<cidr>\d+)".into(),
        "SUBNET" => format!(r"\[?(?:{ip4}|{ip6})(?:/(?P<cidr>\d+))?\]?"),
        "F-ID/" => r"(?P<fid>\S+)".into(),
        "F-PORT/" => r"(?P<fport>\w+)".into(),
        _ => unreachable!(),
    }
}

fn map_tag_name(t: &str) -> String {
    let t = t.to_lowercase();
    match t.as_str() {
        "id" => "fid".into(),
        "port" => "fport".into(),
        _ => t,
    }
}

/// Replace Fail2Ban tags (`<HOST>`, `<F-USER>..</F-USER>`, `<SKIPLINES>`, ...)
/// the way `failregex.Regex._resolveHostTag` does.
pub(crate) fn resolve_tags(regex: &str, use_dns: bool) -> String {
    let mut out = String::with_capacity(regex.len() + 64);
    let mut open: Vec<String> = Vec::new();
    let mut nl = 0;
    let b = regex.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'<' {
            // </?[\w\-]+/?>
            let mut j = i + 1;
            let close = j < b.len() && b[j] == b'/';
            if close {
                j += 1;
            }
            let ns = j;
            while j < regex.len() {
                let c = regex[j..].chars().next().unwrap();
                if c.is_alphanumeric() || c == '_' || c == '-' {
                    j += c.len_utf8();
                } else {
                    break;
                }
            }
            let ne = j;
            let selfclose = j < b.len() && b[j] == b'/';
            if selfclose {
                j += 1;
            }
            if ne > ns && j < b.len() && b[j] == b'>' {
                let tag = &regex[i..=j];
                let tn = &tag[1..tag.len() - 1];
                if let Some(r) = subst_tag(tn, use_dns, &mut open, &mut nl) {
                    out.push_str(&r);
                } else {
                    out.push_str(tag);
                }
                i = j + 1;
                continue;
            }
        }
        let c = regex[i..].chars().next().unwrap();
        out.push(c);
        i += c.len_utf8();
    }
    out
}

fn subst_tag(tn: &str, use_dns: bool, open: &mut Vec<String>, nl: &mut usize) -> Option<String> {
    match tn {
        "HOST" | "IP4" | "IP6" | "ADDR" | "CIDR" | "SUBNET" | "DNS" | "F-ID/" | "F-PORT/" => {
            return Some(host_re(tn, use_dns));
        }
        "F-IP4/" | "F-IP6/" | "F-ADDR/" | "F-CIDR/" | "F-SUBNET/" | "F-DNS/" => {
            return Some(host_re(&tn[2..tn.len() - 1], use_dns));
        }
        "SKIPLINES" => {
            let r = format!(r"\n(?P<skiplines{nl}>(?:(?:.*\n)*?))");
            *nl += 1;
            return Some(r);
        }
        _ => {}
    }
    // ^(/?)F-([A-Z0-9_\-]+)$
    let (close, rest) = match tn.strip_prefix('/') {
        Some(r) => (true, r),
        None => (false, tn),
    };
    let name = rest.strip_prefix("F-")?;
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_' || c == '-') {
        return None;
    }
    if close {
        if open.iter().any(|o| o == name) { Some(")".into()) } else { None }
    } else {
        open.push(name.to_string());
        Some(format!("(?P<{}>", map_tag_name(name).replace('-', "_")))
    }
}

/// Move Python "global" flags written inside a group, `((?i)x)` or
/// `(?:(?i)x)`, to scoped flags `(?i:x)` as Fail2Ban does.
pub(crate) fn glob_to_local_flags(re: &str) -> String {
    let mut out = String::with_capacity(re.len());
    let b = re.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'(' && (i == 0 || b[i - 1] != b'\\') {
            let mut j = i + 1;
            if re[j..].starts_with("?:") {
                j += 2;
            }
            if re[j..].starts_with("(?") {
                let k = j + 2;
                let fl: usize = re[k..].bytes().take_while(u8::is_ascii_lowercase).count();
                if fl > 0 && re[k + fl..].starts_with(')') {
                    out.push_str(&re[j..k + fl]);
                    out.push(':');
                    i = k + fl + 1;
                    continue;
                }
            }
        }
        let c = re[i..].chars().next().unwrap();
        out.push(c);
        i += c.len_utf8();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tr(p: &str) -> (String, Engine) {
        render(&parse(p).unwrap(), false, false)
    }

    #[test]
    fn python_literals_are_not_rust_word_boundaries() {
        let (r, e) = tr(r"\<HOST\> a\>b");
        assert_eq!(e, Engine::Linear);
        let re = regex::Regex::new(&r).unwrap();
        assert!(re.is_match("<HOST> a>b"));
    }

    #[test]
    fn brace_forms() {
        let re = regex::Regex::new(&tr(r"^a{,2}b$").0).unwrap();
        assert!(re.is_match("aab") && re.is_match("b") && !re.is_match("aaab"));
        // `{` that is not a quantifier is a literal in Python
        let re = regex::Regex::new(&tr(r"^x{y}$").0).unwrap();
        assert!(re.is_match("x{y}"));
        let re = regex::Regex::new(&tr(r"^a{$").0).unwrap();
        assert!(re.is_match("a{"));
    }

    #[test]
    fn bracket_quirks() {
        let re = regex::Regex::new(&tr(r"^[^[]+\[[]a-]+[\w.-]$").0).unwrap();
        assert!(re.is_match("abc[]a-]x"));
        assert!(!re.is_match("a[bc[]a]x"));
        let re = regex::Regex::new(&tr(r"^[&&~]+$").0).unwrap();
        assert!(re.is_match("&~&"));
        let re = regex::Regex::new(&tr(r"^[^<>@]+[\<\>]$").0).unwrap();
        assert!(re.is_match("ab>") && !re.is_match("a<b>"));
    }

    #[test]
    fn named_groups_and_backrefs() {
        let (r, e) = tr(r"(?P<q>['x])(?P<v>\w+)(?P=q)");
        assert_eq!(e, Engine::Backtracking);
        let re = fancy_regex::Regex::new(&r).unwrap();
        assert!(re.is_match("'ab'").unwrap());
        assert!(!re.is_match("'abx").unwrap());
        let (r, _) = tr(r"(a)?(?(1)b|c)d");
        let re = fancy_regex::Regex::new(&r).unwrap();
        assert!(re.is_match("abd").unwrap() && re.is_match("cd").unwrap());
        assert!(!re.is_match("acd").unwrap() || re.find("acd").unwrap().unwrap().as_str() == "cd");
        let (r, _) = tr(r"(?P<c>a)?(?(c)b|c)d");
        let re = fancy_regex::Regex::new(&r).unwrap();
        assert_eq!(re.find("xabd").unwrap().unwrap().as_str(), "abd");
    }

    #[test]
    fn relaxed_is_superset() {
        let p = parse(r"^(?:(?! from ).)*?x(?=y)").unwrap();
        let (r, e) = render(&p, false, true);
        assert_eq!(e, Engine::Linear);
        let re = regex::Regex::new(&r).unwrap();
        assert!(re.is_match("a from bxy"));
    }

    #[test]
    fn python_escapes() {
        let re = regex::Regex::new(&tr(r"^\x41\u0042\t\-\#\ \%$").0).unwrap();
        assert!(re.is_match("AB\t-# %"));
        assert!(parse(r"\q").is_err());
        assert!(parse(r"a**").is_err());
        assert!(parse(r"(a").is_err());
    }

    #[test]
    fn global_flags() {
        let re = regex::Regex::new(&tr(&glob_to_local_flags(r"x((?i)ab)")).0).unwrap();
        assert!(re.is_match("xAB") && !re.is_match("XAB"));
        let re = regex::Regex::new(&tr(r"(?i)ab").0).unwrap();
        assert!(re.is_match("AB"));
    }

    #[test]
    fn host_tags_and_ipv6() {
        let r = resolve_tags("from <HOST> user <F-USER>\\S+</F-USER> </F-NOPE>", true);
        let re = regex::Regex::new(&tr(&r).0).unwrap();
        let c = re.captures("from 2001:db8::1 user bob </F-NOPE>").unwrap();
        assert_eq!(&c["ip6"], "2001:db8::1");
        assert_eq!(&c["user"], "bob");
        let c = re.captures("from ::ffff:192.0.2.1 user x </F-NOPE>").unwrap();
        assert_eq!(&c["ip4"], "192.0.2.1");
        let c = re.captures("from fe80:: user x </F-NOPE>").unwrap();
        assert_eq!(&c["ip6"], "fe80::");
        let c = re.captures("from host.example.org user x </F-NOPE>").unwrap();
        assert_eq!(&c["dns"], "host.example.org");
        // <F-ID> maps to fid
        assert!(resolve_tags("<F-ID>x</F-ID>", true).contains("(?P<fid>x)"));
    }
}

#[cfg(test)]
mod linearize_tests {
    use super::*;

    /// Compare the fancy original with the linearized rewrite on many inputs.
    fn same(pat: &str, inputs: &[&str]) {
        let p = parse(pat).unwrap();
        assert!(p.node.is_fancy());
        let lin = linearize(&p.node).expect("linearizable");
        let lp = Parsed { node: lin, flags: p.flags.clone() };
        let (lr, e) = render(&lp, false, false);
        assert_eq!(e, Engine::Linear, "{lr}");
        let (fr, _) = render(&p, false, false);
        let fre = fancy_regex::Regex::new(&fr).unwrap();
        let lre = regex::Regex::new(&lr).unwrap();
        let names: Vec<String> = fre.capture_names().flatten().map(str::to_string).collect();
        for inp in inputs {
            let fc = fre.captures(inp).unwrap();
            let lc = lre.captures(inp);
            assert_eq!(fc.is_some(), lc.is_some(), "{pat} on {inp:?}\n{lr}");
            if let (Some(fc), Some(lc)) = (fc, lc) {
                assert_eq!(fc.get(0).map(|m| m.range()), lc.get(0).map(|m| m.range()), "{inp:?}");
                for n in &names {
                    let lv = lre
                        .capture_names()
                        .enumerate()
                        .filter(|(_, x)| x.map(base_group_name) == Some(n.as_str()))
                        .find_map(|(i, _)| lc.get(i))
                        .map(|m| m.as_str());
                    assert_eq!(fc.name(n).map(|m| m.as_str()), lv, "group {n} on {inp:?}");
                }
            }
        }
    }

    #[test]
    fn avoid_literal_languages() {
        let re = regex::Regex::new(&format!("^{}$", avoid_literal(" from ", false))).unwrap();
        for (s, ok) in
            [("abc", true), ("a from b", false), ("a  fro m", true), (" from", true), ("x from ", false), ("", true)]
        {
            assert_eq!(re.is_match(s), ok, "{s:?}");
        }
        let re = regex::Regex::new(&format!("^{}$", avoid_literal("aab", true))).unwrap();
        // s + "aa" must not contain "aab"
        for (s, ok) in [("x", true), ("xa", true), ("b", true), ("aab", false), ("ab", true)] {
            assert_eq!(re.is_match(s), ok, "{s:?}");
        }
    }

    #[test]
    fn sshd_failed_regex_is_linearized_exactly() {
        let pat = r"^Failed \S+ for (?P<cond_inv>invalid user )?(?P<user>(?P<cond_user>\S+)|(?(cond_inv)(?:(?! from ).)*?|[^:]+)) from (?P<host>[\d.]+)(?: (?:port \d+|on \S+)){0,2}(?: ssh\d*)?(?(cond_user): |(?:(?:(?! from ).)*)$)";
        same(
            pat,
            &[
                "Failed password for root from 192.0.2.1 port 22 ssh2",
                "Failed password for invalid user x from 192.0.2.1 port 22 ssh2",
                "Failed password for invalid user x y from 192.0.2.1 port 22 ssh2",
                "Failed password for invalid user x from 1.2.3.4 from 192.0.2.1 port 22 ssh2",
                "Failed password for x from 1.2.3.4 from 192.0.2.1 port 22 ssh2",
                "Failed publickey for git from 192.0.2.1 port 57904 ssh2: ECDSA 0e:ff",
                "Failed password for a:b from 192.0.2.1 port 22 ssh2",
                "Failed password for invalid user  from 192.0.2.1 port 22 ssh2",
                "Failed none for invalid user from from 192.0.2.1 port 1",
                "Failed password for invalid user from 192.0.2.1",
                "Failed password for from from from 192.0.2.1 port 22 ssh2",
            ],
        );
    }

    #[test]
    fn conditional_on_optional_group() {
        same(r"^(?P<a>x)?(?(a)y|z)(?P<b>\d+)$", &["xy1", "z2", "xz3", "y4", "xyz"]);
        same(r"(?P<q>')?(?P<v>\w+)(?(q)')", &["'abc'", "abc", "'abc", "x'y'"]);
    }
}
