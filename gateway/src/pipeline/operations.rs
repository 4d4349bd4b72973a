//! Which operation a request runs, and the metric label it gets. A client chooses
//! `operationName` freely, so it becomes a label only when the document defines that
//! operation, and only the first `max` distinct names do: the rest share `other`.
//! The label set, and so `/metrics`, stays bounded whatever anonymous callers send.

use std::collections::HashSet;
use std::sync::Mutex;

use async_graphql::parser::types::{
    DocumentOperations, ExecutableDocument, OperationDefinition, OperationType,
};
use async_graphql::Request;

/// Label of operations with no name.
const ANONYMOUS: &str = "anonymous";
/// Label of everything past the bound, and of names that are not plain identifiers.
pub const OTHER: &str = "other";

/// The operation `request` selects: its type and name (`None` for an anonymous one),
/// or `None` when the document does not parse or holds no such operation.
pub fn selected(request: &mut Request) -> Option<(OperationType, Option<String>)> {
    let wanted = request.operation_name.clone();
    let document = request.parsed_query().ok()?;
    operation(document, wanted.as_deref()).map(|(op, name)| (op.ty, name.map(str::to_owned)))
}

/// The operation of `document` that `name` selects, as execution chose it.
pub fn operation<'a>(
    document: &'a ExecutableDocument,
    name: Option<&str>,
) -> Option<(&'a OperationDefinition, Option<&'a str>)> {
    match (&document.operations, name) {
        (DocumentOperations::Single(op), None) => Some((&op.node, None)),
        (DocumentOperations::Single(_), Some(_)) => None,
        (DocumentOperations::Multiple(ops), Some(name)) => {
            let (name, op) = ops.get_key_value(name)?;
            Some((&op.node, Some(name.as_str())))
        }
        (DocumentOperations::Multiple(ops), None) if ops.len() == 1 => ops
            .iter()
            .next()
            .map(|(name, op)| (&op.node, Some(name.as_str()))),
        (DocumentOperations::Multiple(_), None) => None,
    }
}

/// The labels handed out so far (leaked once each, so they are `'static`; at most
/// `max` of them, each at most 64 bytes).
pub struct OperationLabels {
    max: usize,
    seen: Mutex<HashSet<&'static str>>,
}

impl OperationLabels {
    /// At most `max` distinct operation names.
    pub fn new(max: usize) -> Self {
        OperationLabels {
            max,
            seen: Mutex::new(HashSet::new()),
        }
    }

    /// The label for `request`'s operation.
    pub fn label_for(&self, request: &mut Request) -> &'static str {
        match selected(request) {
            Some((_, None)) => ANONYMOUS,
            Some((_, Some(name))) => self.label(&name),
            None => OTHER,
        }
    }

    fn label(&self, name: &str) -> &'static str {
        let plain =
            name.len() <= 64 && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if !plain {
            return OTHER;
        }
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(known) = seen.get(name) {
            return known;
        }
        if seen.len() >= self.max {
            return OTHER;
        }
        let leaked: &'static str = Box::leak(name.to_string().into_boxed_str());
        seen.insert(leaked);
        leaked
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_defined_names_become_labels_and_only_so_many() {
        let labels = OperationLabels::new(2);
        let named = |query: &str, name: Option<&str>| {
            let mut r = Request::new(query);
            r.operation_name = name.map(str::to_string);
            labels.label_for(&mut r)
        };
        assert_eq!(named("{ books { title } }", None), "anonymous");
        assert_eq!(named("{ books { title } }", Some("Made_Up")), "other");
        assert_eq!(named("query A { books { title } }", None), "A");
        assert_eq!(named("query B { books { title } }", Some("B")), "B");
        assert_eq!(
            named("query C { books { title } }", Some("C")),
            "other",
            "past the bound"
        );
        assert_eq!(
            named("query A { books { title } }", Some("A")),
            "A",
            "known names stay"
        );
        assert_eq!(named("{ books {", None), "other", "unparsed");
    }

    #[test]
    fn the_selected_operation() {
        let two = "query A { books { title } } mutation B { checkinAsset(assetUpc: \"1\") { id } }";
        let mut r = Request::new(two).operation_name("B");
        assert_eq!(
            selected(&mut r),
            Some((OperationType::Mutation, Some("B".into())))
        );
        assert_eq!(selected(&mut Request::new(two)), None, "ambiguous");
        assert_eq!(
            selected(&mut Request::new("subscription { checkout { id } }")),
            Some((OperationType::Subscription, None))
        );
    }
}
