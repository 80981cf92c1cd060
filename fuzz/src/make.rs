//! Structured inputs built by `arbitrary` from random bytes: JSON documents whose keys are the
//! parser's own field names (so objects reach past the first lookup), and text lines made of
//! the parser's tokens.

use arbitrary::{Result, Unstructured};
use base64::Engine as _;
use serde_json::{Map, Number, Value};

/// Integers that sit on the edges parsers get wrong.
const INTS: &[i64] = &[
    0,
    1,
    -1,
    2,
    3,
    4,
    255,
    256,
    65_535,
    i32::MAX as i64,
    i32::MIN as i64,
    u32::MAX as i64,
    1_000_000_000,
    9_999_999_999,
    1_700_000_000,
    1_700_000_000_000,
    i64::MAX,
    i64::MIN,
];

/// A JSON value, at most `depth` levels deep; object keys are mostly from `keys`, strings
/// mostly from `words`.
pub fn json(u: &mut Unstructured, keys: &[&str], words: &[&str], depth: u32) -> Result<Value> {
    let kind = if depth == 0 {
        u.int_in_range(0..=5u8)?
    } else {
        u.int_in_range(0..=8u8)?
    };
    Ok(match kind {
        0 => Value::Null,
        1 => Value::Bool(u.arbitrary()?),
        2 => Value::Number(Number::from(int(u)?)),
        3 => match u.int_in_range(0..=2u8)? {
            0 => Value::Number(Number::from(u.arbitrary::<u64>()?)),
            _ => Number::from_f64(u.arbitrary::<f64>()?)
                .map(Value::Number)
                .unwrap_or(Value::Null),
        },
        4 | 5 => Value::String(string(u, words)?),
        6 => {
            let n = u.int_in_range(0..=6usize)?;
            let mut a = Vec::with_capacity(n);
            for _ in 0..n {
                a.push(json(u, keys, words, depth - 1)?);
            }
            Value::Array(a)
        }
        _ => {
            let n = u.int_in_range(0..=keys.len().clamp(1, 10))?;
            let mut m = Map::new();
            for _ in 0..n {
                let k = if !keys.is_empty() && u.ratio(7u8, 8u8)? {
                    (*u.choose(keys)?).to_owned()
                } else {
                    u.arbitrary::<String>()?
                };
                m.insert(k, json(u, keys, words, depth - 1)?);
            }
            Value::Object(m)
        }
    })
}

/// An integer, often an edge value, sometimes as a string (PHP sends both).
pub fn int(u: &mut Unstructured) -> Result<i64> {
    if u.ratio(2u8, 3u8)? {
        Ok(*u.choose(INTS)?)
    } else {
        u.arbitrary()
    }
}

/// A string: one of `words`, one of them base64-encoded, or arbitrary text.
pub fn string(u: &mut Unstructured, words: &[&str]) -> Result<String> {
    Ok(match u.int_in_range(0..=3u8)? {
        0 | 1 if !words.is_empty() => (*u.choose(words)?).to_owned(),
        2 => base64::engine::general_purpose::STANDARD.encode(u.arbitrary::<String>()?),
        _ => u.arbitrary::<String>()?,
    })
}

/// A JSON object document (sometimes with junk before it, as PHP notices precede JSON).
pub fn json_doc(u: &mut Unstructured, keys: &[&str], words: &[&str]) -> Result<Vec<u8>> {
    let mut m = Map::new();
    let n = u.int_in_range(1..=keys.len().max(1))?;
    for _ in 0..n {
        if keys.is_empty() {
            break;
        }
        m.insert((*u.choose(keys)?).to_owned(), json(u, keys, words, 3)?);
    }
    let mut out = Vec::new();
    if u.ratio(1u8, 6u8)? {
        out.extend_from_slice(
            b"<br />\n<b>Notice</b>:  Undefined index: x in <b>/x.php</b><br />\n",
        );
    }
    out.extend_from_slice(Value::Object(m).to_string().as_bytes());
    Ok(out)
}

/// Lines made of `tokens` and arbitrary words, joined by `seps`.
pub fn lines(u: &mut Unstructured, tokens: &[&str], seps: &[&str]) -> Result<Vec<u8>> {
    let mut out = String::new();
    let n = u.int_in_range(1..=20usize)?;
    for _ in 0..n {
        let words = u.int_in_range(1..=8usize)?;
        for w in 0..words {
            if w > 0 {
                out.push_str(if seps.is_empty() {
                    " "
                } else {
                    u.choose(seps)?
                });
            }
            if !tokens.is_empty() && u.ratio(3u8, 4u8)? {
                out.push_str(u.choose(tokens)?);
            } else if u.ratio(1u8, 2u8)? {
                out.push_str(&int(u)?.to_string());
            } else {
                out.push_str(&u.arbitrary::<String>()?);
            }
        }
        out.push('\n');
    }
    Ok(out.into_bytes())
}
