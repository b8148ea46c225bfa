//! Reading request fields the way PaddleX's pydantic schemas check them, so
//! that a refused field gets PaddleX's 422 with the same `type`, `loc` and
//! `msg` (pydantic 2's wording).

use serde_json::{Map, Value};

use super::protocol::ApiError;

/// A request body's fields: refuses a body that is not a JSON object.
pub fn object(body: &Value) -> Result<&Map<String, Value>, ApiError> {
    body.as_object().ok_or_else(|| {
        ApiError::invalid_field(
            "model_attributes_type",
            "body",
            "Input should be a valid dictionary or object to extract fields from",
        )
    })
}

/// A required string field.
pub fn string<'a>(fields: &'a Map<String, Value>, name: &str) -> Result<&'a str, ApiError> {
    match fields.get(name) {
        None => Err(ApiError::invalid_field("missing", &loc(name), "Field required")),
        Some(Value::String(text)) => Ok(text),
        Some(_) => Err(ApiError::invalid_field("string_type", &loc(name), "Input should be a valid string")),
    }
}

/// An optional integer field (`null` is absent).
pub fn opt_int(fields: &Map<String, Value>, name: &str) -> Result<Option<i64>, ApiError> {
    match fields.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(value) => value
            .as_i64()
            .map(Some)
            .ok_or_else(|| ApiError::invalid_field("int_type", &loc(name), "Input should be a valid integer")),
    }
}

/// An optional boolean field (`null` is absent).
pub fn opt_bool(fields: &Map<String, Value>, name: &str) -> Result<Option<bool>, ApiError> {
    match fields.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(_) => Err(ApiError::invalid_field("bool_type", &loc(name), "Input should be a valid boolean")),
    }
}

/// FastAPI's location of a body field, dotted as PaddleX writes it.
pub fn loc(name: &str) -> String {
    format!("body.{name}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn message(err: ApiError) -> (u16, Value) {
        (err.status.as_u16(), serde_json::from_str(&err.message).unwrap())
    }

    #[test]
    fn refusals_read_as_pydantic_writes_them() {
        let body = json!({"image": 3, "topk": "x", "visualize": 1});
        let fields = object(&body).unwrap();
        let expected = |kind: &str, field: &str, msg: &str| (422, json!([{"type": kind, "loc": field, "msg": msg}]));
        assert_eq!(message(string(fields, "file").unwrap_err()), expected("missing", "body.file", "Field required"));
        assert_eq!(
            message(string(fields, "image").unwrap_err()),
            expected("string_type", "body.image", "Input should be a valid string")
        );
        assert_eq!(
            message(opt_int(fields, "topk").unwrap_err()),
            expected("int_type", "body.topk", "Input should be a valid integer")
        );
        assert_eq!(
            message(opt_bool(fields, "visualize").unwrap_err()),
            expected("bool_type", "body.visualize", "Input should be a valid boolean")
        );
        assert_eq!(message(object(&json!([1])).unwrap_err()).0, 422);
        let ok = json!({"image": "aGk=", "topk": null});
        assert_eq!(string(object(&ok).unwrap(), "image").unwrap(), "aGk=");
        assert_eq!(opt_int(object(&ok).unwrap(), "topk").unwrap(), None);
    }
}
