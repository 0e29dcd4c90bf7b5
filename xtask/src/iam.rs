//! The local IAM check: the AWS actions the integration tests saw each function use (recorded
//! by `shared::testkit::iam`) against what `template.yaml` allows it. A missing permission
//! would pass every local test and fail once deployed; an unused one is privilege to spare.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use crate::Result;

/// Where the tests append what they record (`shared::testkit::iam::RECORD_FILE_ENV`).
pub const RECORD_FILE_ENV: &str = "IAM_RECORD_FILE";

/// Used at cold start only, where the tests read keys from a file instead.
const COLD_START_ACTIONS: [&str; 1] = ["secretsmanager:GetSecretValue"];

/// Holds the records in `record_file` against the template; `Err` lists every difference.
pub fn check(template: &str, record_file: &Path) -> Result<()> {
    let allowed = shared::localstack::allowed_actions(template)?;
    let records = std::fs::read_to_string(record_file).map_err(|e| {
        format!(
            "no AWS actions were recorded in {}: {e}",
            record_file.display()
        )
    })?;
    let used = parse(&records);
    let problems = compare(&allowed, &used);
    for (function, actions) in &used {
        println!(
            "xtask: IAM {function}: {}",
            actions.iter().cloned().collect::<Vec<_>>().join(", ")
        );
    }
    if problems.is_empty() {
        println!(
            "xtask: IAM: template.yaml allows each function exactly the actions its tests used"
        );
        Ok(())
    } else {
        Err(format!("IAM check failed:\n  {}", problems.join("\n  ")).into())
    }
}

fn parse(records: &str) -> BTreeMap<String, BTreeSet<String>> {
    let mut used: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for line in records.lines() {
        if let Some((function, action)) = line.split_once(' ') {
            used.entry(function.to_owned())
                .or_default()
                .insert(action.to_owned());
        }
    }
    used
}

fn compare(
    allowed: &BTreeMap<String, BTreeSet<String>>,
    used: &BTreeMap<String, BTreeSet<String>>,
) -> Vec<String> {
    let mut problems = Vec::new();
    let none = BTreeSet::new();
    for (function, allowed_actions) in allowed {
        let used_actions = used.get(function).unwrap_or(&none);
        if used_actions.is_empty() {
            problems.push(format!(
                "{function}: the tests recorded no AWS request of this function"
            ));
            continue;
        }
        for action in used_actions.difference(allowed_actions) {
            problems.push(format!(
                "{function} uses {action}, which template.yaml does not allow it"
            ));
        }
        for action in allowed_actions.difference(used_actions) {
            if !COLD_START_ACTIONS.contains(&action.as_str()) {
                problems.push(format!(
                    "{function} is allowed {action}, which no test saw it use"
                ));
            }
        }
    }
    for function in used.keys().filter(|f| !allowed.contains_key(*f)) {
        problems.push(format!(
            "{function} made AWS requests but is not a function of template.yaml"
        ));
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(actions: &[&str]) -> BTreeSet<String> {
        actions.iter().map(|a| a.to_string()).collect()
    }

    #[test]
    fn a_missing_and_an_unused_permission_are_both_reported() {
        let allowed = BTreeMap::from([(
            "users".to_owned(),
            set(&[
                "dynamodb:GetItem",
                "ses:SendEmail",
                "secretsmanager:GetSecretValue",
            ]),
        )]);
        let used = parse("users dynamodb:GetItem\nusers dynamodb:PutItem\n");
        assert_eq!(
            compare(&allowed, &used),
            [
                "users uses dynamodb:PutItem, which template.yaml does not allow it",
                "users is allowed ses:SendEmail, which no test saw it use",
            ]
        );
        let exact = parse("users dynamodb:GetItem\nusers ses:SendEmail\n");
        assert!(compare(&allowed, &exact).is_empty());
    }

    #[test]
    fn the_template_policies_are_read_per_function() {
        let template = std::fs::read_to_string(crate::root().join("template.yaml")).unwrap();
        let allowed = shared::localstack::allowed_actions(&template).unwrap();
        assert!(allowed["sessions"].contains("dynamodb:BatchGetItem"));
        assert!(
            allowed["diagnostic-reports"]
                .iter()
                .any(|a| a.starts_with("s3:"))
        );
        assert!(!allowed["sessions"].iter().any(|a| a.starts_with("s3:")));
        // Listing users may query the four user indexes only; reports query the table.
        let queries = |function: &str| -> Vec<String> {
            allowed[function]
                .iter()
                .filter(|a| a.starts_with("dynamodb:Query"))
                .cloned()
                .collect()
        };
        assert_eq!(
            queries("users"),
            [
                "dynamodb:Query",
                "dynamodb:Query index/gsi1",
                "dynamodb:Query index/gsi2",
                "dynamodb:Query index/usersByFirstName",
                "dynamodb:Query index/usersByLastName"
            ]
        );
        assert_eq!(queries("diagnostic-reports"), ["dynamodb:Query"]);
    }

    #[test]
    fn an_index_wildcard_matches_no_recorded_query_so_it_is_reported() {
        let template = r#"
Resources:
  F:
    Type: AWS::Serverless::Function
    Metadata:
      BuildProperties:
        Binary: f
    Properties:
      Policies:
        - Statement:
            - Effect: Allow
              Action: [dynamodb:Query, dynamodb:GetItem]
              Resource:
                - !GetAtt Table.Arn
                - !Sub "${Table.Arn}/index/*"
"#;
        let allowed = shared::localstack::allowed_actions(template).unwrap();
        assert_eq!(
            allowed["f"],
            set(&[
                "dynamodb:GetItem",
                "dynamodb:GetItem index/*",
                "dynamodb:Query",
                "dynamodb:Query index/*",
            ])
        );
        let used = parse("f dynamodb:Query index/gsi1\nf dynamodb:GetItem\n");
        assert_eq!(
            compare(&allowed, &used),
            [
                "f uses dynamodb:Query index/gsi1, which template.yaml does not allow it",
                "f is allowed dynamodb:GetItem index/*, which no test saw it use",
                "f is allowed dynamodb:Query, which no test saw it use",
                "f is allowed dynamodb:Query index/*, which no test saw it use",
            ]
        );
    }
}
