//! A small reader of the Arrow IPC stream format, enough to check what fakesnow sends as
//! `rowsetBase64`: uncompressed streams of integers, floats, booleans, decimals, dates, text,
//! binary and structs (Snowflake's timestamps). The tests crate carries no Arrow library; a
//! connector uses a real one. Values come out as JSON: integers as exact numbers, decimals as
//! strings with their scale, binary as hex, structs as objects.

use serde_json::{Map, Number, Value};

/// A column of the stream's schema.
#[derive(Debug, Clone)]
pub struct Field {
    /// Column name.
    pub name: String,
    /// The field's custom metadata (fakesnow: `logicalType`, `precision`, `scale`, `charLength`).
    pub metadata: Vec<(String, String)>,
    /// Struct members.
    pub children: Vec<Field>,
    kind: Kind,
}

impl Field {
    /// A metadata value by key.
    pub fn meta(&self, key: &str) -> Option<&str> {
        self.metadata
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    Null,
    Int { bytes: usize, signed: bool },
    Float { double: bool },
    Bool,
    Utf8 { large: bool },
    Binary { large: bool },
    Decimal { scale: i32 },
    DateDays,
    DateMillis,
    Struct,
}

/// A decoded stream: its schema and every row of every record batch.
#[derive(Debug, Clone)]
pub struct Table {
    /// The columns.
    pub fields: Vec<Field>,
    /// Rows, one value per column.
    pub rows: Vec<Vec<Value>>,
}

/// Decodes an Arrow IPC stream.
pub fn read_stream(bytes: &[u8]) -> Result<Table, String> {
    let mut fields: Option<Vec<Field>> = None;
    let mut rows = Vec::new();
    let mut pos = 0;
    while pos + 4 <= bytes.len() {
        let mut len = i32::from_le_bytes(take::<4>(bytes, pos)?);
        pos += 4;
        if len == -1 {
            len = i32::from_le_bytes(take::<4>(bytes, pos)?);
            pos += 4;
        }
        if len <= 0 {
            break;
        }
        let meta = slice(bytes, pos, len as usize)?;
        pos += len as usize;
        let message = Fb::root(meta)?;
        let body = slice(
            bytes,
            pos,
            message.scalar::<8>(3)?.map_or(0, i64::from_le_bytes) as usize,
        )?;
        pos += body.len();
        let header = message.table(2)?.ok_or("message without header")?;
        match message.scalar::<1>(1)?.map_or(0, |b| b[0]) {
            1 => {
                fields = Some(
                    header
                        .tables(1)?
                        .iter()
                        .map(field)
                        .collect::<Result<_, _>>()?,
                )
            }
            3 => {
                let schema = fields.as_deref().ok_or("record batch before schema")?;
                rows.extend(record_batch(schema, header, body)?);
            }
            other => return Err(format!("unsupported message type {other}")),
        }
    }
    Ok(Table {
        fields: fields.ok_or("stream without schema")?,
        rows,
    })
}

fn slice(bytes: &[u8], pos: usize, len: usize) -> Result<&[u8], String> {
    bytes
        .get(pos..pos.checked_add(len).ok_or("length overflow")?)
        .ok_or_else(|| format!("truncated: {len} bytes at {pos} of {}", bytes.len()))
}

fn take<const N: usize>(bytes: &[u8], pos: usize) -> Result<[u8; N], String> {
    Ok(slice(bytes, pos, N)?.try_into().expect("slice of N bytes"))
}

/// A flatbuffers table: the position of its start in the message metadata.
#[derive(Clone, Copy)]
struct Fb<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Fb<'a> {
    fn root(buf: &'a [u8]) -> Result<Fb<'a>, String> {
        let pos = u32::from_le_bytes(take::<4>(buf, 0)?) as usize;
        Ok(Fb { buf, pos })
    }

    /// Where field `index` is stored, if present (the vtable gives 0 for absent fields).
    fn field(&self, index: usize) -> Result<Option<usize>, String> {
        let back = i32::from_le_bytes(take::<4>(self.buf, self.pos)?) as i64;
        let vtable = usize::try_from(self.pos as i64 - back).map_err(|_| "bad vtable offset")?;
        let vtable_len = u16::from_le_bytes(take::<2>(self.buf, vtable)?) as usize;
        let slot = 4 + 2 * index;
        if slot + 2 > vtable_len {
            return Ok(None);
        }
        let offset = u16::from_le_bytes(take::<2>(self.buf, vtable + slot)?) as usize;
        Ok((offset != 0).then_some(self.pos + offset))
    }

    fn scalar<const N: usize>(&self, index: usize) -> Result<Option<[u8; N]>, String> {
        self.field(index)?
            .map(|p| take::<N>(self.buf, p))
            .transpose()
    }

    fn indirect(&self, at: usize) -> Result<usize, String> {
        Ok(at + u32::from_le_bytes(take::<4>(self.buf, at)?) as usize)
    }

    fn table(&self, index: usize) -> Result<Option<Fb<'a>>, String> {
        let Some(at) = self.field(index)? else {
            return Ok(None);
        };
        Ok(Some(Fb {
            buf: self.buf,
            pos: self.indirect(at)?,
        }))
    }

    /// A vector field: where its elements start and how many there are.
    fn vector(&self, index: usize) -> Result<(usize, usize), String> {
        let Some(at) = self.field(index)? else {
            return Ok((0, 0));
        };
        let start = self.indirect(at)?;
        let len = u32::from_le_bytes(take::<4>(self.buf, start)?) as usize;
        Ok((start + 4, len))
    }

    fn tables(&self, index: usize) -> Result<Vec<Fb<'a>>, String> {
        let (start, len) = self.vector(index)?;
        (0..len)
            .map(|i| {
                let pos = self.indirect(start + 4 * i)?;
                Ok(Fb { buf: self.buf, pos })
            })
            .collect()
    }

    fn string(&self, index: usize) -> Result<String, String> {
        let (start, len) = self.vector(index)?;
        let bytes = slice(self.buf, start, len)?;
        String::from_utf8(bytes.to_vec()).map_err(|e| format!("field name: {e}"))
    }

    /// A vector of 16-byte structs of two i64 (FieldNode, Buffer).
    fn pairs(&self, index: usize) -> Result<Vec<(i64, i64)>, String> {
        let (start, len) = self.vector(index)?;
        (0..len)
            .map(|i| {
                let at = start + 16 * i;
                let a = i64::from_le_bytes(take::<8>(self.buf, at)?);
                Ok((a, i64::from_le_bytes(take::<8>(self.buf, at + 8)?)))
            })
            .collect()
    }
}

fn field(fb: &Fb) -> Result<Field, String> {
    let name = fb.string(0)?;
    if fb.field(4)?.is_some() {
        return Err(format!(
            "{name}: dictionary-encoded columns are not supported"
        ));
    }
    let type_id = fb.scalar::<1>(2)?.map_or(0, |b| b[0]);
    let ty = fb.table(3)?;
    let int = |index: usize, default: i32| -> Result<i32, String> {
        Ok(ty
            .map(|t| t.scalar::<4>(index))
            .transpose()?
            .flatten()
            .map_or(default, i32::from_le_bytes))
    };
    let short = |index: usize, default: i16| -> Result<i16, String> {
        Ok(ty
            .map(|t| t.scalar::<2>(index))
            .transpose()?
            .flatten()
            .map_or(default, i16::from_le_bytes))
    };
    let kind = match type_id {
        1 => Kind::Null,
        2 => Kind::Int {
            bytes: int(0, 0)? as usize / 8,
            signed: ty
                .map(|t| t.scalar::<1>(1))
                .transpose()?
                .flatten()
                .is_some_and(|b| b[0] != 0),
        },
        3 => Kind::Float {
            double: short(0, 0)? == 2,
        },
        4 | 19 => Kind::Binary {
            large: type_id == 19,
        },
        5 | 20 => Kind::Utf8 {
            large: type_id == 20,
        },
        6 => Kind::Bool,
        7 if int(2, 128)? == 128 => Kind::Decimal { scale: int(1, 0)? },
        8 if short(0, 1)? == 0 => Kind::DateDays,
        8 => Kind::DateMillis,
        13 => Kind::Struct,
        other => return Err(format!("{name}: unsupported Arrow type id {other}")),
    };
    let metadata = fb
        .tables(6)?
        .iter()
        .map(|kv| Ok((kv.string(0)?, kv.string(1)?)))
        .collect::<Result<_, String>>()?;
    let children = fb.tables(5)?.iter().map(field).collect::<Result<_, _>>()?;
    Ok(Field {
        name,
        metadata,
        children,
        kind,
    })
}

/// The record batch's field nodes and buffers, consumed in schema order.
struct Cursor<'a> {
    body: &'a [u8],
    nodes: std::vec::IntoIter<(i64, i64)>,
    buffers: std::vec::IntoIter<(i64, i64)>,
}

impl<'a> Cursor<'a> {
    fn node(&mut self) -> Result<(usize, i64), String> {
        let (len, nulls) = self.nodes.next().ok_or("missing field node")?;
        Ok((len as usize, nulls))
    }

    fn buffer(&mut self) -> Result<&'a [u8], String> {
        let (offset, len) = self.buffers.next().ok_or("missing buffer")?;
        slice(self.body, offset as usize, len as usize)
    }
}

fn record_batch(fields: &[Field], batch: Fb, body: &[u8]) -> Result<Vec<Vec<Value>>, String> {
    if batch.field(3)?.is_some() {
        return Err("compressed record batches are not supported".into());
    }
    let length = batch.scalar::<8>(0)?.map_or(0, i64::from_le_bytes) as usize;
    let mut cursor = Cursor {
        body,
        nodes: batch.pairs(1)?.into_iter(),
        buffers: batch.pairs(2)?.into_iter(),
    };
    let columns = fields
        .iter()
        .map(|f| column(f, &mut cursor))
        .collect::<Result<Vec<_>, _>>()?;
    Ok((0..length)
        .map(|row| columns.iter().map(|c| c[row].clone()).collect())
        .collect())
}

fn bit(bits: &[u8], i: usize) -> bool {
    bits.get(i / 8).is_some_and(|b| b & (1 << (i % 8)) != 0)
}

fn column(field: &Field, cursor: &mut Cursor) -> Result<Vec<Value>, String> {
    let (len, nulls) = cursor.node()?;
    if let Kind::Null = field.kind {
        return Ok(vec![Value::Null; len]);
    }
    let validity = cursor.buffer()?;
    let valid = |i: usize| nulls == 0 || validity.is_empty() || bit(validity, i);
    let values: Vec<Value> = match field.kind {
        Kind::Struct => {
            let children = field
                .children
                .iter()
                .map(|c| Ok((c.name.clone(), column(c, cursor)?)))
                .collect::<Result<Vec<_>, String>>()?;
            (0..len)
                .map(|i| {
                    let object: Map<String, Value> = children
                        .iter()
                        .map(|(n, v)| (n.clone(), v[i].clone()))
                        .collect();
                    Value::Object(object)
                })
                .collect()
        }
        Kind::Utf8 { large } | Kind::Binary { large } => {
            let offsets = cursor.buffer()?;
            let data = cursor.buffer()?;
            let width = if large { 8 } else { 4 };
            let at = |i: usize| -> Result<usize, String> {
                let raw = slice(offsets, i * width, width)?;
                Ok(if large {
                    i64::from_le_bytes(raw.try_into().expect("8 bytes")) as usize
                } else {
                    i32::from_le_bytes(raw.try_into().expect("4 bytes")) as usize
                })
            };
            (0..len)
                .map(|i| {
                    let bytes = slice(data, at(i)?, at(i + 1)? - at(i)?)?;
                    Ok(match field.kind {
                        Kind::Utf8 { .. } => Value::String(
                            String::from_utf8(bytes.to_vec()).map_err(|e| e.to_string())?,
                        ),
                        _ => Value::String(hex::encode(bytes)),
                    })
                })
                .collect::<Result<_, String>>()?
        }
        kind => fixed_width(kind, cursor.buffer()?, len)?,
    };
    Ok(values
        .into_iter()
        .enumerate()
        .map(|(i, v)| if valid(i) { v } else { Value::Null })
        .collect())
}

fn fixed_width(kind: Kind, data: &[u8], len: usize) -> Result<Vec<Value>, String> {
    (0..len)
        .map(|i| {
            Ok(match kind {
                Kind::Bool => Value::Bool(bit(data, i)),
                Kind::Int { bytes, signed } => {
                    let mut raw = [0u8; 16];
                    raw[..bytes].copy_from_slice(slice(data, i * bytes, bytes)?);
                    let negative = signed && raw[bytes - 1] & 0x80 != 0;
                    if negative {
                        raw[bytes..].fill(0xff);
                    }
                    Value::Number(number(&i128::from_le_bytes(raw).to_string())?)
                }
                Kind::Float { double: true } => f64::from_le_bytes(take::<8>(data, i * 8)?).into(),
                Kind::Float { double: false } => f32::from_le_bytes(take::<4>(data, i * 4)?).into(),
                Kind::Decimal { scale } => Value::String(decimal(
                    i128::from_le_bytes(take::<16>(data, i * 16)?),
                    scale,
                )),
                Kind::DateDays => i32::from_le_bytes(take::<4>(data, i * 4)?).into(),
                Kind::DateMillis => i64::from_le_bytes(take::<8>(data, i * 8)?).into(),
                other => return Err(format!("{other:?} is not fixed-width")),
            })
        })
        .collect()
}

fn number(text: &str) -> Result<Number, String> {
    text.parse().map_err(|e| format!("number {text}: {e}"))
}

/// The unscaled integer as a decimal string with exactly `scale` digits after the point.
fn decimal(unscaled: i128, scale: i32) -> String {
    let digits = unscaled.unsigned_abs().to_string();
    let sign = if unscaled < 0 { "-" } else { "" };
    if scale <= 0 {
        return format!(
            "{sign}{digits}{}",
            "0".repeat(scale.unsigned_abs() as usize)
        );
    }
    let scale = scale as usize;
    let padded = format!("{digits:0>width$}", width = scale + 1);
    let (whole, fraction) = padded.split_at(padded.len() - scale);
    format!("{sign}{whole}.{fraction}")
}

#[cfg(test)]
mod tests {
    use super::decimal;

    #[test]
    fn decimals_keep_their_scale() {
        assert_eq!(decimal(15, 1), "1.5");
        assert_eq!(decimal(-5, 3), "-0.005");
        assert_eq!(decimal(0, 2), "0.00");
        assert_eq!(decimal(12, 0), "12");
        assert_eq!(decimal(12, -2), "1200");
    }
}
