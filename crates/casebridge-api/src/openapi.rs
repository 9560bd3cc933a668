use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::path::Operation;
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};
use utoipa::{Modify, OpenApi};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "casebridge",
        description = "Integration hub of the legal-intake platform: cases, clients, lists and \
                       campaigns, kept in sync with law firms' CRMs. Authenticate with \
                       `Authorization: Bearer <company API key>`. Errors are \
                       `{\"error\": {\"code\", \"message\", \"details\"}}`. Lists are paginated \
                       with `cursor` and `limit`. Times are RFC 3339, from the year 1900 \
                       through 2999; a webhook `url` is at most 2048 characters; a body at most \
                       1 MiB; a path and query at most 8 KiB. A NUL character in any text, or a \
                       field given twice with different values, is refused (422 naming it)."
    ),
    modifiers(&BearerAuth),
    components(schemas(crate::error::ErrorBody))
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("A company API key"))
                    .build(),
            ),
        );
    }
}

/// The errors a route can give whatever its handler does, added to every operation of the
/// document (an operation that documents one already keeps its own description): 400 (a path or
/// body that cannot be read), 401 (operations that need a key), 413 and 415 (operations with a
/// body), 414, 422 (operations with parameters or a body), 500, and 503 (with `Retry-After`).
pub fn document_errors(spec: &mut utoipa::openapi::OpenApi) {
    for item in spec.paths.paths.values_mut() {
        let operations = [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.patch,
        ];
        for op in operations.into_iter().flatten() {
            document(op);
        }
    }
}

fn document(op: &mut Operation) {
    let has_body = op.request_body.is_some();
    let has_params = op.parameters.as_ref().is_some_and(|p| !p.is_empty());
    let secured = op.security.as_ref().is_some_and(|s| !s.is_empty());
    let errors: [(&str, bool, &str); 8] = [
        (
            "400",
            true,
            "The path or the body cannot be read (`bad_path`, `malformed_json`).",
        ),
        ("401", secured, "No valid API key (`unauthorized`)."),
        (
            "413",
            has_body,
            "The body is larger than the limit (`payload_too_large`).",
        ),
        (
            "414",
            true,
            "The URL is longer than 8 KiB (`uri_too_long`).",
        ),
        (
            "415",
            has_body,
            "The body is not in a format this route reads (`unsupported_media_type`).",
        ),
        (
            "422",
            has_body || has_params,
            "A field is not acceptable; `details` names each one (`validation_failed`). Also for \
             a NUL character in any text and a field given twice with different values.",
        ),
        (
            "500",
            true,
            "Something went wrong on our side (`internal_error`).",
        ),
        (
            "503",
            true,
            "The database (or a service it needs) cannot answer now; try again after \
             `Retry-After` seconds (`unavailable`).",
        ),
    ];
    for (status, applies, description) in errors {
        if !applies || op.responses.responses.contains_key(status) {
            continue;
        }
        let response = ResponseBuilder::new().description(description).content(
            "application/json",
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("ErrorBody")))
                .build(),
        );
        op.responses
            .responses
            .insert(status.to_owned(), RefOr::T(response.build()));
    }
    if let Some(RefOr::T(unavailable)) = op.responses.responses.get_mut("503") {
        unavailable.headers.insert(
            "Retry-After".to_owned(),
            HeaderBuilder::new()
                .schema(ObjectBuilder::new().schema_type(Type::Integer))
                .description(Some("Seconds to wait before trying again."))
                .build(),
        );
    }
}
