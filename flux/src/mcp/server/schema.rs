//! Checks tool arguments against a workflow input's JSON Schema (the subset `schemars` writes:
//! `type`, `properties`, `required`, `additionalProperties`, `items`, `enum`, `const`, `anyOf`,
//! `oneOf`, `allOf`, `minimum`, `maximum` and local `$ref`s), naming the field at fault. The
//! server decodes the input into the workflow's type anyway; this check only gives an assistant
//! a message that says which argument to fix.

use serde_json::Value;

/// `Ok` when `value` fits `schema`, else what is wrong and where (`n`, `items[2].name`).
pub(crate) fn validate(schema: &Value, value: &Value) -> Result<(), String> {
    check_at(schema, schema, value, "", 0)
}

/// How deep `$ref`s may nest before the schema counts as circular for this value.
const MAX_DEPTH: usize = 64;

fn check_at(root: &Value, schema: &Value, value: &Value, path: &str, depth: usize) -> Result<(), String> {
    if depth > MAX_DEPTH {
        return Err(format!("{}: the input nests deeper than the schema allows", shown(path)));
    }
    let schema = match schema {
        Value::Bool(true) => return Ok(()),
        Value::Bool(false) => return Err(format!("{}: no value is allowed here", shown(path))),
        Value::Object(map) => map,
        _ => return Ok(()),
    };
    if let Some(reference) = schema.get("$ref").and_then(Value::as_str) {
        let target = reference.strip_prefix('#').and_then(|pointer| root.pointer(pointer));
        if let Some(target) = target {
            check_at(root, target, value, path, depth + 1)?;
        }
    }
    if let Some(types) = schema.get("type") {
        let allowed: Vec<&str> = match types {
            Value::String(t) => vec![t.as_str()],
            Value::Array(list) => list.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        };
        if !allowed.is_empty() && !allowed.iter().any(|t| is_type(value, t)) {
            return Err(format!("{}: expected {}, got {}", shown(path), allowed.join(" or "), describe(value)));
        }
    }
    if let Some(options) = schema.get("enum").and_then(Value::as_array)
        && !options.contains(value)
    {
        let listed: Vec<String> = options.iter().map(Value::to_string).collect();
        return Err(format!("{}: expected one of {}, got {value}", shown(path), listed.join(", ")));
    }
    if let Some(expected) = schema.get("const")
        && expected != value
    {
        return Err(format!("{}: expected {expected}, got {value}", shown(path)));
    }
    if let Some(n) = value.as_f64() {
        if let Some(min) = schema.get("minimum").and_then(Value::as_f64)
            && n < min
        {
            return Err(format!("{}: expected at least {min}, got {value}", shown(path)));
        }
        if let Some(max) = schema.get("maximum").and_then(Value::as_f64)
            && n > max
        {
            return Err(format!("{}: expected at most {max}, got {value}", shown(path)));
        }
    }
    for key in ["anyOf", "oneOf"] {
        if let Some(options) = schema.get(key).and_then(Value::as_array)
            && !options.is_empty()
        {
            let mut reasons = Vec::new();
            for option in options {
                match check_at(root, option, value, path, depth + 1) {
                    Ok(()) => {
                        reasons.clear();
                        break;
                    }
                    Err(reason) => reasons.push(reason),
                }
            }
            if !reasons.is_empty() {
                return Err(reasons.join("; or "));
            }
        }
    }
    if let Some(all) = schema.get("allOf").and_then(Value::as_array) {
        for part in all {
            check_at(root, part, value, path, depth + 1)?;
        }
    }
    if let Value::Object(fields) = value {
        let properties = schema.get("properties").and_then(Value::as_object);
        for name in schema.get("required").and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str) {
            if !fields.contains_key(name) {
                return Err(format!("{}: missing (required)", shown(&join(path, name))));
            }
        }
        for (name, field) in fields {
            match properties.and_then(|p| p.get(name)) {
                Some(property) => check_at(root, property, field, &join(path, name), depth + 1)?,
                None => match schema.get("additionalProperties") {
                    Some(Value::Bool(false)) => {
                        let known: Vec<&str> =
                            properties.map(|p| p.keys().map(String::as_str).collect()).unwrap_or_default();
                        return Err(format!(
                            "{}: unknown field (expected {})",
                            shown(&join(path, name)),
                            if known.is_empty() { "none".to_string() } else { known.join(", ") }
                        ));
                    }
                    Some(extra @ Value::Object(_)) => check_at(root, extra, field, &join(path, name), depth + 1)?,
                    _ => {}
                },
            }
        }
    }
    if let (Value::Array(items), Some(item_schema)) = (value, schema.get("items")) {
        for (i, item) in items.iter().enumerate() {
            check_at(root, item_schema, item, &format!("{path}[{i}]"), depth + 1)?;
        }
    }
    Ok(())
}

fn is_type(value: &Value, name: &str) -> bool {
    match name {
        "null" => value.is_null(),
        "boolean" => value.is_boolean(),
        "string" => value.is_string(),
        "array" => value.is_array(),
        "object" => value.is_object(),
        "number" => value.is_number(),
        "integer" => value.is_i64() || value.is_u64() || value.as_f64().is_some_and(|f| f.fract() == 0.0),
        _ => true,
    }
}

fn describe(value: &Value) -> String {
    match value {
        Value::Null => "null".to_string(),
        Value::Bool(b) => format!("boolean {b}"),
        Value::Number(n) => format!("number {n}"),
        Value::String(s) if s.len() > 40 => "a string".to_string(),
        Value::String(s) => format!("string {s:?}"),
        Value::Array(_) => "an array".to_string(),
        Value::Object(_) => "an object".to_string(),
    }
}

fn join(path: &str, field: &str) -> String {
    if path.is_empty() { field.to_string() } else { format!("{path}.{field}") }
}

fn shown(path: &str) -> String {
    if path.is_empty() { "the input".to_string() } else { format!("argument `{path}`") }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::validate;

    #[test]
    fn names_the_field_at_fault() {
        let schema = json!({
            "type": "object",
            "properties": {
                "name": {"type": "string"},
                "count": {"type": "integer", "format": "uint32", "minimum": 0},
                "tags": {"type": "array", "items": {"$ref": "#/$defs/Tag"}},
                "note": {"type": ["string", "null"]}
            },
            "required": ["name", "count"],
            "$defs": {"Tag": {"type": "object", "properties": {"label": {"type": "string"}}, "required": ["label"]}}
        });
        assert_eq!(validate(&schema, &json!({"name": "a", "count": 2, "note": null})), Ok(()));
        let err = validate(&schema, &json!({"name": "a", "count": "two"})).unwrap_err();
        assert_eq!(err, "argument `count`: expected integer, got string \"two\"");
        let err = validate(&schema, &json!({"count": 1})).unwrap_err();
        assert_eq!(err, "argument `name`: missing (required)");
        let err = validate(&schema, &json!({"name": "a", "count": -1})).unwrap_err();
        assert!(err.contains("`count`: expected at least 0"), "{err}");
        let err =
            validate(&schema, &json!({"name": "a", "count": 1, "tags": [{"label": "x"}, {"label": 3}]})).unwrap_err();
        assert_eq!(err, "argument `tags[1].label`: expected string, got number 3");
        let err = validate(&schema, &json!("plain")).unwrap_err();
        assert_eq!(err, "the input: expected object, got string \"plain\"");
    }

    #[test]
    fn enums_and_unions() {
        let schema = json!({"oneOf": [{"type": "string", "enum": ["a", "b"]}, {"type": "null"}]});
        assert_eq!(validate(&schema, &json!("a")), Ok(()));
        assert_eq!(validate(&schema, &json!(null)), Ok(()));
        assert!(validate(&schema, &json!("c")).is_err());
        let closed = json!({"type": "object", "properties": {"a": {}}, "additionalProperties": false});
        assert_eq!(validate(&closed, &json!({"b": 1})).unwrap_err(), "argument `b`: unknown field (expected a)");
    }
}
