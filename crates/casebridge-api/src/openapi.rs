use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "casebridge",
        description = "Integration hub of the legal-intake platform: cases, clients, lists and \
                       campaigns, kept in sync with law firms' CRMs. Authenticate with \
                       `Authorization: Bearer <company API key>`. Errors are \
                       `{\"error\": {\"code\", \"message\", \"details\"}}`. Lists are paginated \
                       with `cursor` and `limit`."
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
