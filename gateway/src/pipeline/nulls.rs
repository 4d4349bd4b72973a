//! Where a failed field's `null` goes (GraphQL spec, "Handling Field Errors"): a
//! failed field is `null` when its type is nullable, and otherwise the null moves up
//! to the nearest nullable position above it (a list item, a field), up to `data`
//! itself. async-graphql 7 instead leaves a failed field out of its object whatever
//! its type (`do_resolve_container`), which typed clients (Apollo iOS and Kotlin code
//! generation) reject either way.
//!
//! Positions are told by the schema's field types (read once from its SDL, as
//! async-graphql keeps its registry private) and the executed document, followed
//! along each error's path by response key, so aliases and fragments count.

use std::collections::HashMap;

use async_graphql::parser::types::{
    BaseType, ExecutableDocument, OperationDefinition, OperationType, Selection, SelectionSet,
    Type, TypeKind,
};
use async_graphql::parser::types::{ServiceDocument, TypeSystemDefinition};
use async_graphql::{Name, PathSegment, Value};

use super::operations::operation;

/// Fragments followed inside one another at most while finding a field: validation
/// refuses cycles already; this keeps a bug there from becoming unbounded work.
const MAX_FRAGMENT_DEPTH: usize = 32;

/// Every object and interface field's type, and the root types.
#[derive(Debug, Default)]
pub struct FieldTypes {
    fields: HashMap<(String, String), Type>,
    query: String,
    mutation: String,
    subscription: String,
}

impl FieldTypes {
    /// The types in `sdl` (the schema's own, so it parses; if it did not, every
    /// failed field would be made `null` where it is, as before).
    pub fn from_sdl(sdl: &str) -> Self {
        let mut types = FieldTypes {
            query: "Query".into(),
            mutation: "Mutation".into(),
            subscription: "Subscription".into(),
            ..FieldTypes::default()
        };
        let Ok(ServiceDocument { definitions }) = async_graphql::parser::parse_schema(sdl) else {
            return types;
        };
        for definition in definitions {
            match definition {
                TypeSystemDefinition::Schema(schema) => {
                    let schema = schema.node;
                    if let Some(name) = schema.query {
                        types.query = name.node.to_string();
                    }
                    if let Some(name) = schema.mutation {
                        types.mutation = name.node.to_string();
                    }
                    if let Some(name) = schema.subscription {
                        types.subscription = name.node.to_string();
                    }
                }
                TypeSystemDefinition::Type(ty) => {
                    let ty = ty.node;
                    let fields = match ty.kind {
                        TypeKind::Object(object) => object.fields,
                        TypeKind::Interface(interface) => interface.fields,
                        _ => continue,
                    };
                    for field in fields {
                        let field = field.node;
                        types.fields.insert(
                            (ty.name.node.to_string(), field.name.node.to_string()),
                            field.ty.node,
                        );
                    }
                }
                TypeSystemDefinition::Directive(_) => {}
            }
        }
        types
    }

    fn root(&self, operation: OperationType) -> &str {
        match operation {
            OperationType::Query => &self.query,
            OperationType::Mutation => &self.mutation,
            OperationType::Subscription => &self.subscription,
        }
    }

    /// Whether each position along `path` may be `null`, or `None` when the path
    /// does not follow the document (then the caller nulls the path itself).
    fn nullable_along(
        &self,
        document: &ExecutableDocument,
        operation: &OperationDefinition,
        path: &[PathSegment],
    ) -> Option<Vec<bool>> {
        let mut nullable = Vec::with_capacity(path.len());
        let mut selection = &operation.selection_set.node;
        let mut parent = self.root(operation.ty).to_owned();
        let mut current: Option<&Type> = None;
        for segment in path {
            let ty = match segment {
                PathSegment::Field(key) => {
                    if let Some(ty) = current {
                        parent = named(ty).to_owned();
                    }
                    let (field, in_type) = find(document, selection, &parent, key, 0)?;
                    selection = &field.selection_set.node;
                    self.fields.get(&(in_type, field.name.node.to_string()))?
                }
                PathSegment::Index(_) => match &current?.base {
                    BaseType::List(item) => item.as_ref(),
                    BaseType::Named(_) => return None,
                },
            };
            nullable.push(ty.nullable);
            current = Some(ty);
        }
        Some(nullable)
    }
}

/// The type a (possibly list) type finally names.
fn named(ty: &Type) -> &str {
    match &ty.base {
        BaseType::Named(name) => name.as_str(),
        BaseType::List(item) => named(item),
    }
}

/// The field with response key `key` in `selection` (fragments included), and the
/// type it is selected on.
fn find<'a>(
    document: &'a ExecutableDocument,
    selection: &'a SelectionSet,
    parent: &str,
    key: &str,
    depth: usize,
) -> Option<(&'a async_graphql::parser::types::Field, String)> {
    if depth > MAX_FRAGMENT_DEPTH {
        return None;
    }
    selection.items.iter().find_map(|item| match &item.node {
        Selection::Field(field) => (field.node.response_key().node.as_str() == key)
            .then(|| (&field.node, parent.to_owned())),
        Selection::FragmentSpread(spread) => {
            let fragment = &document
                .fragments
                .get(&spread.node.fragment_name.node)?
                .node;
            let on = fragment.type_condition.node.on.node.as_str();
            find(document, &fragment.selection_set.node, on, key, depth + 1)
        }
        Selection::InlineFragment(inline) => {
            let on = inline
                .node
                .type_condition
                .as_ref()
                .map_or(parent, |c| c.node.on.node.as_str());
            find(
                document,
                &inline.node.selection_set.node,
                on,
                key,
                depth + 1,
            )
        }
    })
}

/// What a response's nulls are placed by: the schema's field types and the
/// executed document and operation (without a document, each failed field is made
/// `null` where it is).
#[derive(Clone, Copy)]
pub struct Shape<'a> {
    pub types: &'a FieldTypes,
    pub document: Option<&'a ExecutableDocument>,
    pub operation_name: Option<&'a str>,
}

impl Shape<'_> {
    /// Puts the nulls of the errors at `paths` into `data`.
    pub fn propagate(&self, data: &mut Value, paths: &[&[PathSegment]]) {
        propagate(data, paths, *self)
    }
}

fn propagate(data: &mut Value, paths: &[&[PathSegment]], shape: Shape<'_>) {
    let types = shape.types;
    let executed = shape
        .document
        .and_then(|d| Some((d, operation(d, shape.operation_name)?.0)));
    let mut targets: Vec<&[PathSegment]> = Vec::with_capacity(paths.len());
    for path in paths {
        let nullable = executed.and_then(|(d, op)| types.nullable_along(d, op, path));
        match nullable {
            None => targets.push(path),
            Some(nullable) => match nullable.iter().rposition(|n| *n) {
                Some(i) => targets.push(&path[..=i]),
                // Nothing above it may be null: neither may `data` keep anything.
                None => {
                    *data = Value::Null;
                    return;
                }
            },
        }
    }
    // Shallowest first: a position already made null is not entered again.
    targets.sort_by_key(|t| t.len());
    let mut done: Vec<&[PathSegment]> = Vec::with_capacity(targets.len());
    for target in targets {
        if done.iter().any(|d| target.starts_with(d)) {
            continue;
        }
        set_null(data, target);
        done.push(target);
    }
}

/// Makes the position at `path` `null`, creating the objects above it that
/// async-graphql turned into `null` because every field in them failed.
fn set_null(data: &mut Value, path: &[PathSegment]) {
    let Some((last, above)) = path.split_last() else {
        return;
    };
    let mut node = data;
    for segment in above {
        node = match (node, segment) {
            (node @ Value::Null, PathSegment::Field(name)) => {
                *node = Value::Object(Default::default());
                let Value::Object(fields) = node else {
                    return;
                };
                fields.entry(Name::new(name)).or_insert(Value::Null)
            }
            (Value::Object(fields), PathSegment::Field(name)) => {
                fields.entry(Name::new(name)).or_insert(Value::Null)
            }
            (Value::List(items), PathSegment::Index(i)) => match items.get_mut(*i) {
                Some(next) => next,
                None => return,
            },
            _ => return,
        };
    }
    match (node, last) {
        (node @ Value::Null, PathSegment::Field(name)) => {
            *node = Value::Object(Default::default());
            if let Value::Object(fields) = node {
                fields.insert(Name::new(name), Value::Null);
            }
        }
        (Value::Object(fields), PathSegment::Field(name)) => {
            fields.insert(Name::new(name), Value::Null);
        }
        (Value::List(items), PathSegment::Index(i)) => {
            if let Some(item) = items.get_mut(*i) {
                *item = Value::Null;
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_graphql::value;

    const SDL: &str = "
        type Query { checkouts: [Checkout!]! patron(email: String!): Patron }
        type Checkout { id: ID! patron: Patron! book: Book }
        type Patron { firstName: String! email: String }
        type Book { title: String! }
    ";

    fn field(name: &str) -> PathSegment {
        PathSegment::Field(name.into())
    }

    /// `data` after the errors at `paths` of executing `query`.
    fn placed(query: &str, mut data: Value, paths: &[Vec<PathSegment>]) -> Value {
        let types = FieldTypes::from_sdl(SDL);
        let document = async_graphql::parser::parse_query(query).expect("parses");
        let shape = Shape {
            types: &types,
            document: Some(&document),
            operation_name: None,
        };
        let paths: Vec<&[PathSegment]> = paths.iter().map(Vec::as_slice).collect();
        shape.propagate(&mut data, &paths);
        data
    }

    #[test]
    fn a_failed_nullable_field_is_null_where_it_is() {
        let data = placed(
            r#"{ patron(email: "a") { firstName email } }"#,
            value!({"patron": {"firstName": "Averill"}}),
            &[vec![field("patron"), field("email")]],
        );
        assert_eq!(
            data,
            value!({"patron": {"firstName": "Averill", "email": null}})
        );
    }

    #[test]
    fn a_failed_non_null_field_nulls_its_nearest_nullable_parent() {
        let data = placed(
            r#"{ patron(email: "a") { firstName email } }"#,
            value!({"patron": {"email": "a"}}),
            &[vec![field("patron"), field("firstName")]],
        );
        assert_eq!(data, value!({"patron": null}));
        let data = placed(
            "{ checkouts { id book { title } } }",
            value!({"checkouts": [{"id": "1", "book": {}}, {"id": "2", "book": {"title": "T"}}]}),
            &[vec![
                field("checkouts"),
                PathSegment::Index(0),
                field("book"),
                field("title"),
            ]],
        );
        assert_eq!(
            data,
            value!({"checkouts": [{"id": "1", "book": null}, {"id": "2", "book": {"title": "T"}}]})
        );
    }

    #[test]
    fn with_no_nullable_position_above_it_data_is_null() {
        let data = placed(
            "{ checkouts { id patron { firstName } } }",
            value!({"checkouts": [{"id": "1"}]}),
            &[vec![
                field("checkouts"),
                PathSegment::Index(0),
                field("patron"),
            ]],
        );
        assert_eq!(data, Value::Null);
    }

    #[test]
    fn aliases_and_fragments_are_followed() {
        let query = r#"
            query Q { p: patron(email: "a") { ...F } }
            fragment F on Patron { name: firstName ... on Patron { mail: email } }
        "#;
        let data = placed(
            query,
            value!({"p": {"name": "Averill"}}),
            &[vec![field("p"), field("mail")]],
        );
        assert_eq!(data, value!({"p": {"name": "Averill", "mail": null}}));
        let data = placed(
            query,
            value!({"p": {"mail": "a"}}),
            &[vec![field("p"), field("name")]],
        );
        assert_eq!(data, value!({"p": null}));
    }

    #[test]
    fn an_object_whose_every_field_failed_keeps_its_nulls_and_nested_nulls_go_once() {
        // async-graphql makes an object with no field left `null`.
        let data = placed(
            r#"{ patron(email: "a") { email } }"#,
            value!({"patron": null}),
            &[vec![field("patron"), field("email")]],
        );
        assert_eq!(data, value!({"patron": {"email": null}}));
        let data = placed(
            r#"{ patron(email: "a") { firstName email } }"#,
            value!({"patron": null}),
            &[
                vec![field("patron"), field("email")],
                vec![field("patron"), field("firstName")],
            ],
        );
        assert_eq!(data, value!({"patron": null}), "the parent's null wins");
    }

    #[test]
    fn the_gateway_schema_reads() {
        let schema = crate::graphql::sdl();
        let types = FieldTypes::from_sdl(&schema);
        assert!(types.fields.len() > 10, "{:?}", types.fields.keys());
    }
}
