//! API Gateway's route selection, over the routes of `template.yaml`, for the dev server.

use lambda_http::http::Method;
use percent_encoding::percent_decode_str;
use shared::App;
use shared::localstack::Route;

/// The function crates, each of which the dev server calls in-process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Function {
    Users,
    Sessions,
    TwoFactor,
    PasswordRecovery,
    EmailVerification,
    DiagnosticReports,
    Passkeys,
}

impl Function {
    /// By cargo binary name, as in the template's `Metadata.BuildProperties.Binary`.
    fn from_binary(binary: &str) -> Option<Self> {
        Some(match binary {
            "users" => Function::Users,
            "sessions" => Function::Sessions,
            "two-factor" => Function::TwoFactor,
            "password-recovery" => Function::PasswordRecovery,
            "email-verification" => Function::EmailVerification,
            "diagnostic-reports" => Function::DiagnosticReports,
            "passkeys" => Function::Passkeys,
            _ => return None,
        })
    }

    pub fn binary(self) -> &'static str {
        match self {
            Function::Users => "users",
            Function::Sessions => "sessions",
            Function::TwoFactor => "two-factor",
            Function::PasswordRecovery => "password-recovery",
            Function::EmailVerification => "email-verification",
            Function::DiagnosticReports => "diagnostic-reports",
            Function::Passkeys => "passkeys",
        }
    }

    pub async fn call(
        self,
        app: &App,
        request: lambda_http::Request,
    ) -> lambda_http::Response<lambda_http::Body> {
        match self {
            Function::Users => users::handle(app, request).await,
            Function::Sessions => sessions::handle(app, request).await,
            Function::TwoFactor => two_factor::handle(app, request).await,
            Function::PasswordRecovery => password_recovery::handle(app, request).await,
            Function::EmailVerification => email_verification::handle(app, request).await,
            Function::DiagnosticReports => diagnostic_reports::handle(app, request).await,
            Function::Passkeys => passkeys::handle(app, request).await,
        }
    }
}

#[derive(Debug)]
enum Segment {
    Literal(String),
    /// `{name}`: one non-empty segment.
    Param(String),
    /// `{name+}`: the rest of the path, at least one segment.
    Greedy(String),
}

#[derive(Debug)]
struct CompiledRoute {
    /// `None` for `ANY`.
    method: Option<Method>,
    segments: Vec<Segment>,
    key: String,
    function: Function,
}

/// The route a request reached.
#[derive(Debug, PartialEq, Eq)]
pub struct Matched {
    pub function: Function,
    /// As API Gateway names it: `GET /users/{uuid}` or `$default`.
    pub route_key: String,
    /// Percent-decoded, like API Gateway's `pathParameters`.
    pub path_parameters: Vec<(String, String)>,
}

#[derive(Debug)]
pub struct Router {
    routes: Vec<CompiledRoute>,
    /// The `$default` route's function; without one, API Gateway answers 404 itself.
    fallback: Option<Function>,
}

impl Router {
    pub fn new(routes: &[Route]) -> Result<Self, String> {
        let mut compiled = Vec::new();
        let mut fallback = None;
        for route in routes {
            let function = Function::from_binary(&route.binary).ok_or_else(|| {
                format!(
                    "template.yaml routes {} {} to binary {:?}, which xtask does not know",
                    route.method, route.path, route.binary
                )
            })?;
            if route.path == "$default" {
                if fallback.replace(function).is_some() {
                    return Err("template.yaml has more than one $default route".into());
                }
                continue;
            }
            let method = match route.method.as_str() {
                "ANY" => None,
                other => Some(
                    Method::from_bytes(other.as_bytes())
                        .map_err(|_| format!("template.yaml: bad method {other:?}"))?,
                ),
            };
            compiled.push(CompiledRoute {
                method,
                segments: parse_path(&route.path)?,
                key: format!("{} {}", route.method, route.path),
                function,
            });
        }
        Ok(Self {
            routes: compiled,
            fallback,
        })
    }

    /// The most specific matching route: at the first segment where two candidates differ, a
    /// literal beats `{param}`, which beats `{greedy+}`; then a named method beats `ANY`.
    pub fn resolve(&self, method: &Method, path: &str) -> Option<Matched> {
        let request: Vec<&str> = path.strip_prefix('/').unwrap_or(path).split('/').collect();
        self.routes
            .iter()
            .filter(|route| route.method.as_ref().is_none_or(|m| m == method))
            .filter_map(|route| Some((route, match_segments(&route.segments, &request)?)))
            .min_by_key(|(route, _)| {
                let kinds: Vec<u8> = route
                    .segments
                    .iter()
                    .map(|segment| match segment {
                        Segment::Literal(_) => 0,
                        Segment::Param(_) => 1,
                        Segment::Greedy(_) => 2,
                    })
                    .collect();
                (kinds, route.method.is_none())
            })
            .map(|(route, path_parameters)| Matched {
                function: route.function,
                route_key: route.key.clone(),
                path_parameters,
            })
            .or_else(|| {
                self.fallback.map(|function| Matched {
                    function,
                    route_key: "$default".into(),
                    path_parameters: Vec::new(),
                })
            })
    }
}

fn parse_path(path: &str) -> Result<Vec<Segment>, String> {
    let raw: Vec<&str> = path.strip_prefix('/').unwrap_or(path).split('/').collect();
    raw.iter()
        .enumerate()
        .map(|(index, segment)| {
            let Some(name) = segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) else {
                return Ok(Segment::Literal((*segment).to_owned()));
            };
            match name.strip_suffix('+') {
                Some(name) if index + 1 == raw.len() => Ok(Segment::Greedy(name.to_owned())),
                Some(_) => Err(format!(
                    "template.yaml: {path}: a greedy {{…+}} must be last"
                )),
                None => Ok(Segment::Param(name.to_owned())),
            }
        })
        .collect()
}

fn match_segments(pattern: &[Segment], request: &[&str]) -> Option<Vec<(String, String)>> {
    let mut parameters = Vec::new();
    for (index, segment) in pattern.iter().enumerate() {
        match segment {
            Segment::Literal(literal) => {
                if request.get(index) != Some(&literal.as_str()) {
                    return None;
                }
            }
            Segment::Param(name) => {
                let value = request.get(index).filter(|value| !value.is_empty())?;
                parameters.push((name.clone(), decode(value)));
            }
            Segment::Greedy(name) => {
                let rest = request.get(index..)?.join("/");
                if rest.is_empty() {
                    return None;
                }
                parameters.push((name.clone(), decode(&rest)));
                return Some(parameters);
            }
        }
    }
    (request.len() == pattern.len()).then_some(parameters)
}

fn decode(value: &str) -> String {
    percent_decode_str(value).decode_utf8_lossy().into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn template_router() -> Router {
        let template = include_str!("../../template.yaml");
        Router::new(&shared::localstack::routes(template).unwrap()).unwrap()
    }

    fn route(binary: &str, method: &str, path: &str) -> Route {
        Route {
            binary: binary.into(),
            method: method.into(),
            path: path.into(),
        }
    }

    fn resolve(router: &Router, method: Method, path: &str) -> (Function, String) {
        let matched = router.resolve(&method, path).expect("a route");
        (matched.function, matched.route_key)
    }

    #[test]
    fn every_binary_of_the_template_is_a_known_function() {
        let template = include_str!("../../template.yaml");
        for route in shared::localstack::routes(template).unwrap() {
            let function = Function::from_binary(&route.binary).expect(&route.binary);
            assert_eq!(function.binary(), route.binary);
        }
    }

    #[test]
    fn a_literal_segment_beats_a_parameter() {
        let router = template_router();

        assert_eq!(
            resolve(&router, Method::GET, "/users/count"),
            (Function::Users, "GET /users/count".into())
        );
        assert_eq!(
            resolve(&router, Method::POST, "/users/sessions"),
            (Function::Sessions, "POST /users/sessions".into())
        );
        assert_eq!(
            resolve(&router, Method::DELETE, "/users/two-factor-auth"),
            (Function::TwoFactor, "DELETE /users/two-factor-auth".into())
        );
        assert_eq!(
            resolve(&router, Method::POST, "/users/diagnostic-reports"),
            (
                Function::DiagnosticReports,
                "POST /users/diagnostic-reports".into()
            )
        );
    }

    #[test]
    fn parameters_are_captured_and_percent_decoded() {
        let router = template_router();

        let matched = router
            .resolve(&Method::GET, "/users/verify-email/a%2Bb%40example.com")
            .unwrap();

        assert_eq!(matched.function, Function::EmailVerification);
        assert_eq!(matched.route_key, "GET /users/verify-email/{email}");
        assert_eq!(
            matched.path_parameters,
            [("email".to_string(), "a+b@example.com".to_string())]
        );
    }

    #[test]
    fn each_group_owns_its_routes() {
        let router = template_router();
        let uuid = "0b0a8f8e-5c5e-4c59-9f0e-3f1f1c2d3e4f";

        for (method, path, function) in [
            (Method::PUT, format!("/users/{uuid}/roles"), Function::Users),
            (
                Method::PUT,
                format!("/users/sessions/{uuid}/refresh"),
                Function::Sessions,
            ),
            (
                Method::DELETE,
                format!("/users/sessions/{uuid}"),
                Function::Sessions,
            ),
            (
                Method::GET,
                "/.well-known/jwks.json".into(),
                Function::Sessions,
            ),
            (
                Method::POST,
                format!("/users/{uuid}/pending-two-factor-auth"),
                Function::TwoFactor,
            ),
            (
                Method::DELETE,
                format!("/users/{uuid}/two-factor-auth"),
                Function::TwoFactor,
            ),
            (
                Method::GET,
                "/users/recover-password/verify/abc".into(),
                Function::PasswordRecovery,
            ),
            (
                Method::GET,
                format!("/users/{uuid}/diagnostic-reports"),
                Function::DiagnosticReports,
            ),
        ] {
            assert_eq!(
                router.resolve(&method, &path).unwrap().function,
                function,
                "{method} {path}"
            );
        }
    }

    #[test]
    fn unmatched_paths_and_methods_reach_the_default_route() {
        let router = template_router();

        for (method, path) in [
            (Method::GET, "/nope"),
            (Method::GET, "/"),
            (Method::PUT, "/users/sessions"),
            (Method::GET, "/users/"),
            (Method::GET, "/users/a/b/c/d"),
        ] {
            assert_eq!(
                resolve(&router, method, path),
                (Function::Users, "$default".into()),
                "{path}"
            );
        }
    }

    #[test]
    fn a_greedy_route_comes_after_every_narrower_one_and_a_method_before_any() {
        let router = Router::new(&[
            route("users", "ANY", "/{proxy+}"),
            route("sessions", "ANY", "/users/{uuid}"),
            route("two-factor", "GET", "/users/{uuid}"),
        ])
        .unwrap();

        assert_eq!(
            resolve(&router, Method::GET, "/users/x"),
            (Function::TwoFactor, "GET /users/{uuid}".into())
        );
        assert_eq!(
            resolve(&router, Method::POST, "/users/x"),
            (Function::Sessions, "ANY /users/{uuid}".into())
        );
        let matched = router.resolve(&Method::GET, "/a/b").unwrap();
        assert_eq!(matched.function, Function::Users);
        assert_eq!(
            matched.path_parameters,
            [("proxy".to_string(), "a/b".to_string())]
        );
        assert!(router.resolve(&Method::GET, "/").is_none());
    }

    #[test]
    fn an_unknown_binary_is_refused() {
        let error = Router::new(&[route("billing", "GET", "/bills")]).unwrap_err();

        assert!(error.contains("billing"), "{error}");
    }
}
