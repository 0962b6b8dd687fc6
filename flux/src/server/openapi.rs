//! The API's description, served by the server itself: `GET /openapi.json` and the interactive
//! page at `GET /docs`. Both ship inside the crate; nothing is downloaded at build or run time.

/// The OpenAPI 3.1 document of the HTTP/SSE API (docs/design.md §11), served at `GET /openapi.json`
/// as `application/json`.
pub(crate) const OPENAPI_JSON: &str = include_str!("../../assets/openapi.json");

/// The interactive API page, served at `GET /docs` as `text/html; charset=utf-8`. Plain HTML and
/// JavaScript with no external assets: it loads `/openapi.json`, lists every operation by tag and
/// sends requests (JSON bodies, bearer tokens, server-sent event streams) from the browser.
pub(crate) const DOCS_HTML: &str = include_str!("../../assets/docs.html");

#[cfg(test)]
mod tests {
    use super::{DOCS_HTML, OPENAPI_JSON};
    use serde_json::Value;

    /// Every operation of docs/design.md §11 and §16 (and the two docs routes), as
    /// `(method, path)`.
    const OPERATIONS: &[(&str, &str)] = &[
        ("get", "/workflows"),
        ("get", "/workflows/{name}"),
        ("post", "/workflows/{name}/run/{mode}"),
        ("post", "/workflows/{name}/resume/{execution_id}/{mode}"),
        ("get", "/workflows/{name}/status/{execution_id}"),
        ("get", "/workflows/{name}/cancel/{execution_id}"),
        ("post", "/workflows/{name}/send/{execution_id}/{topic}"),
        ("get", "/workflows/{name}/events/{execution_id}/{key}"),
        ("get", "/executions"),
        ("get", "/executions/{execution_id}"),
        ("get", "/executions/{execution_id}/stream"),
        ("get", "/schedules"),
        ("post", "/schedules"),
        ("get", "/schedules/{name}"),
        ("put", "/schedules/{name}"),
        ("delete", "/schedules/{name}"),
        ("post", "/schedules/{name}/pause"),
        ("post", "/schedules/{name}/resume"),
        ("get", "/schedules/{name}/history"),
        ("get", "/admin/secrets"),
        ("post", "/admin/secrets"),
        ("get", "/admin/secrets/{name}"),
        ("delete", "/admin/secrets/{name}"),
        ("get", "/workers"),
        ("get", "/workers/{name}"),
        ("post", "/workers/register"),
        ("get", "/workers/{name}/connect"),
        ("post", "/workers/{name}/claim/{execution_id}"),
        ("post", "/workers/{name}/checkpoint/{execution_id}"),
        ("post", "/workers/{name}/checkpoints"),
        ("post", "/workers/{name}/progress/{execution_id}"),
        ("get", "/workers/{name}/messages/{execution_id}/{topic}/{index}"),
        ("get", "/metrics"),
        ("get", "/openapi.json"),
        ("get", "/docs"),
    ];

    const METHODS: &[&str] = &["get", "put", "post", "delete", "options", "head", "patch", "trace"];

    fn document() -> Value {
        serde_json::from_str(OPENAPI_JSON).expect("openapi.json is valid JSON")
    }

    /// Follows a local JSON pointer (`#/components/schemas/Event`) inside `doc`.
    fn resolve<'a>(doc: &'a Value, reference: &str) -> Option<&'a Value> {
        let pointer = reference.strip_prefix('#')?;
        doc.pointer(pointer)
    }

    fn collect_refs<'a>(value: &'a Value, out: &mut Vec<&'a str>) {
        match value {
            Value::Object(map) => {
                for (key, v) in map {
                    if key == "$ref" {
                        out.push(v.as_str().expect("$ref is a string"));
                    } else {
                        collect_refs(v, out);
                    }
                }
            }
            Value::Array(items) => items.iter().for_each(|v| collect_refs(v, out)),
            _ => {}
        }
    }

    #[test]
    fn is_openapi_3_1_with_info() {
        let doc = document();
        let version = doc["openapi"].as_str().expect("openapi field");
        assert!(version.starts_with("3.1."), "openapi is {version}");
        assert_eq!(doc["info"]["title"], "flux");
        assert_eq!(doc["info"]["version"], "0.1.0");
    }

    #[test]
    fn every_operation_is_described_and_nothing_else() {
        let doc = document();
        let paths = doc["paths"].as_object().expect("paths object");
        for (method, path) in OPERATIONS {
            let op = &paths.get(*path).unwrap_or_else(|| panic!("missing path {path}"))[*method];
            assert!(op.is_object(), "missing {method} {path}");
            assert!(op["responses"].is_object(), "{method} {path} has no responses");
            assert!(op["tags"].is_array(), "{method} {path} has no tags");
            assert!(op["description"].is_string(), "{method} {path} has no description");
        }
        let mut described = 0;
        for (path, item) in paths {
            for method in METHODS {
                if item.get(*method).is_some() {
                    described += 1;
                    assert!(
                        OPERATIONS.contains(&(*method, path.as_str())),
                        "{method} {path} is not an operation of the API"
                    );
                }
            }
        }
        assert_eq!(described, OPERATIONS.len());
    }

    #[test]
    fn path_parameters_match_the_templates() {
        let doc = document();
        for (method, path) in OPERATIONS {
            let op = &doc["paths"][*path][*method];
            let mut declared: Vec<String> = op["parameters"]
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or_default()
                .iter()
                .map(|p| match p.get("$ref").and_then(Value::as_str) {
                    Some(r) => resolve(&doc, r).expect("parameter $ref resolves"),
                    None => p,
                })
                .filter(|p| p["in"] == "path")
                .map(|p| p["name"].as_str().expect("parameter name").to_owned())
                .collect();
            let mut templated: Vec<String> = path
                .split('/')
                .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
                .map(str::to_owned)
                .collect();
            declared.sort();
            templated.sort();
            assert_eq!(declared, templated, "path parameters of {method} {path}");
        }
    }

    #[test]
    fn every_ref_resolves() {
        let doc = document();
        let mut refs = Vec::new();
        collect_refs(&doc, &mut refs);
        assert!(!refs.is_empty());
        for reference in refs {
            assert!(reference.starts_with("#/"), "external $ref {reference}");
            assert!(resolve(&doc, reference).is_some(), "$ref {reference} does not resolve");
        }
    }

    #[test]
    fn errors_and_security_schemes_are_declared() {
        let doc = document();
        let error = &doc["components"]["schemas"]["Error"];
        assert_eq!(error["properties"]["detail"]["type"], "string");
        assert_eq!(error["required"], serde_json::json!(["detail"]));
        for scheme in ["bootstrapToken", "sessionToken", "adminToken"] {
            let s = &doc["components"]["securitySchemes"][scheme];
            assert_eq!(s["type"], "http", "{scheme}");
            assert_eq!(s["scheme"], "bearer", "{scheme}");
        }
        let states = doc["components"]["schemas"]["ExecutionState"]["enum"].as_array().expect("state enum");
        assert_eq!(states.len(), 12);
        let types = doc["components"]["schemas"]["EventType"]["enum"].as_array().expect("event type enum");
        assert_eq!(types.len(), 28);
    }

    #[test]
    fn the_execution_listing_takes_its_filter_and_answers_a_page() {
        let doc = document();
        let op = &doc["paths"]["/executions"]["get"];
        let mut names: Vec<&str> = op["parameters"]
            .as_array()
            .expect("parameters")
            .iter()
            .map(|p| p["name"].as_str().expect("name"))
            .collect();
        names.sort_unstable();
        assert_eq!(
            names,
            [
                "created_after",
                "created_before",
                "limit",
                "offset",
                "parent",
                "schedule",
                "state",
                "updated_before",
                "workflow"
            ]
        );
        let page = &doc["components"]["schemas"]["ExecutionPage"];
        assert_eq!(page["required"], serde_json::json!(["executions", "total", "limit", "offset"]));
        let row = &doc["components"]["schemas"]["ExecutionRow"]["required"];
        let fields = [
            "execution_id",
            "workflow_name",
            "workflow_version",
            "state",
            "parent_id",
            "worker",
            "created_at",
            "updated_at",
        ];
        assert_eq!(row, &serde_json::json!(fields));
        assert!(op["responses"]["422"].is_object(), "a bad filter is answered 422");
    }

    #[test]
    fn docs_page_loads_the_document_and_nothing_from_outside() {
        assert!(DOCS_HTML.contains("/openapi.json"));
        let lower = DOCS_HTML.to_ascii_lowercase();
        assert!(!lower.contains("http://"), "docs.html names an http:// URL");
        assert!(!lower.contains("https://"), "docs.html names an https:// URL");
        assert!(DOCS_HTML.len() < 25 * 1024, "docs.html is {} bytes", DOCS_HTML.len());
    }
}
