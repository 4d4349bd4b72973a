//! What one operation may ask for: depth and complexity (`Limits`, async-graphql's
//! own checks) and aliases (`AliasLimit`, checked here: async-graphql has no alias
//! limit, and aliases let one request repeat an expensive field many times).

use async_graphql::parser::types::{ExecutableDocument, Selection, SelectionSet};
use async_graphql::{Request, ServerError, ServerResult};

/// Limits on what one operation may ask for.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Deepest selection nesting (15).
    pub depth: usize,
    /// Largest complexity (one point a field, lists weighted; 5,000).
    pub complexity: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            depth: 15,
            complexity: 5_000,
        }
    }
}

/// Refuses documents with more than this many aliased fields, before validation
/// and before any data is read (the pipeline checks every operation, whatever its
/// transport).
#[derive(Debug, Clone, Copy)]
pub struct AliasLimit(pub usize);

impl AliasLimit {
    /// Checks the request's document, parsed once: the schema executes the parsed
    /// document it leaves in the request. A document that does not parse passes,
    /// for execution to report the syntax error.
    pub fn check(&self, request: &mut Request) -> ServerResult<()> {
        match request.parsed_query() {
            Ok(document) => self.check_document(document),
            Err(_) => Ok(()),
        }
    }

    fn check_document(&self, document: &ExecutableDocument) -> ServerResult<()> {
        let aliases = count_aliases(document);
        if aliases > self.0 {
            return Err(ServerError::new(
                format!(
                    "Query uses too many aliases: {aliases} (at most {})",
                    self.0
                ),
                None,
            ));
        }
        Ok(())
    }
}

/// Aliased fields written in the document (operations and fragment definitions).
fn count_aliases(document: &ExecutableDocument) -> usize {
    let operations: usize = document
        .operations
        .iter()
        .map(|(_, op)| in_set(&op.node.selection_set.node))
        .sum();
    let fragments: usize = document
        .fragments
        .values()
        .map(|f| in_set(&f.node.selection_set.node))
        .sum();
    operations + fragments
}

fn in_set(set: &SelectionSet) -> usize {
    set.items
        .iter()
        .map(|item| match &item.node {
            Selection::Field(f) => {
                usize::from(f.node.alias.is_some()) + in_set(&f.node.selection_set.node)
            }
            Selection::InlineFragment(f) => in_set(&f.node.selection_set.node),
            Selection::FragmentSpread(_) => 0,
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_aliases_in_operations_fragments_and_inline_fragments() {
        let doc = async_graphql::parser::parse_query(
            "query { a: books { t: title } books { title } ...F }
             fragment F on Query { b: books { ... on Book { c: title } } }",
        )
        .unwrap();
        assert_eq!(count_aliases(&doc), 4);
    }
}
