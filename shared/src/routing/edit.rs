//! Editing one entry of a tenant's routing (a channel, a provider, a category, a ladder or
//! a rule) through the API. Each edit is applied to the version in force and saved as a
//! whole new version by [`super::store::save_with`].

use serde::Serialize;
use serde_json::Value;

use super::{model::RoutingData, parse};
use crate::domain::FieldError;

/// The collections of a routing document.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Collection {
    Channels,
    Providers,
    Categories,
    Ladders,
    Rules,
}

impl Collection {
    pub const NAMES: [&'static str; 5] =
        ["channels", "providers", "categories", "ladders", "rules"];

    pub fn parse(raw: &str) -> Option<Collection> {
        Some(match raw {
            "channels" => Collection::Channels,
            "providers" => Collection::Providers,
            "categories" => Collection::Categories,
            "ladders" => Collection::Ladders,
            "rules" => Collection::Rules,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        Collection::NAMES[self as usize]
    }

    /// The field that names an entry: `id` for rules, `code` for the rest.
    pub fn key(self) -> &'static str {
        match self {
            Collection::Rules => "id",
            _ => "code",
        }
    }
}

fn to_values<T: Serialize>(items: &[T]) -> Vec<Value> {
    items
        .iter()
        .filter_map(|i| serde_json::to_value(i).ok())
        .collect()
}

/// The entries of one collection, as JSON.
pub fn list(data: &RoutingData, c: Collection) -> Vec<Value> {
    match c {
        Collection::Channels => to_values(&data.channels),
        Collection::Providers => to_values(&data.providers),
        Collection::Categories => to_values(&data.categories),
        Collection::Ladders => to_values(&data.ladders),
        Collection::Rules => to_values(&data.rules),
    }
}

/// Position of the entry named `code`.
pub fn position(data: &RoutingData, c: Collection, code: &str) -> Option<usize> {
    match c {
        Collection::Channels => data.channels.iter().position(|x| x.code == code),
        Collection::Providers => data.providers.iter().position(|x| x.code == code),
        Collection::Categories => data.categories.iter().position(|x| x.code == code),
        Collection::Ladders => data.ladders.iter().position(|x| x.code == code),
        Collection::Rules => data.rules.iter().position(|x| x.id == code),
    }
}

fn put<T>(items: &mut Vec<T>, at: Option<usize>, item: T) -> usize {
    match at {
        Some(i) => {
            items[i] = item;
            i
        }
        None => {
            items.push(item);
            items.len() - 1
        }
    }
}

/// Replaces (or appends) the entry named `code` with `body`. The body may leave out its
/// `code`/`id` (the path names it) but may not contradict it. Returns the new document and
/// the entry's position in its collection.
pub fn upsert(
    mut data: RoutingData,
    c: Collection,
    code: &str,
    body: &Value,
) -> Result<(RoutingData, usize), Vec<FieldError>> {
    let mut body = body.clone();
    let Some(obj) = body.as_object_mut() else {
        return Err(vec![FieldError::new("", "the body must be a JSON object")]);
    };
    let key = c.key();
    match obj.get(key) {
        None | Some(Value::Null) => {
            obj.insert(key.to_owned(), Value::String(code.to_owned()));
        }
        Some(Value::String(s)) if s == code => {}
        Some(_) => {
            return Err(vec![FieldError::new(
                format!("/{key}"),
                format!("must be `{code}`, as in the path, or be left out"),
            )])
        }
    }
    let at = position(&data, c, code);
    let index = match c {
        Collection::Channels => put(&mut data.channels, at, parse::from_value(&body, "")?),
        Collection::Providers => put(&mut data.providers, at, parse::from_value(&body, "")?),
        Collection::Categories => put(&mut data.categories, at, parse::from_value(&body, "")?),
        Collection::Ladders => put(&mut data.ladders, at, parse::from_value(&body, "")?),
        Collection::Rules => put(&mut data.rules, at, parse::from_value(&body, "")?),
    };
    Ok((data, index))
}

/// Removes the entry named `code`; `None` when there is none.
pub fn remove(mut data: RoutingData, c: Collection, code: &str) -> Option<RoutingData> {
    let at = position(&data, c, code)?;
    match c {
        Collection::Channels => {
            data.channels.remove(at);
        }
        Collection::Providers => {
            data.providers.remove(at);
        }
        Collection::Categories => {
            data.categories.remove(at);
        }
        Collection::Ladders => {
            data.ladders.remove(at);
        }
        Collection::Rules => {
            data.rules.remove(at);
        }
    }
    Some(data)
}

/// Validation errors of a whole document, rephrased for a request that sent one entry:
/// errors inside that entry point into the request body; errors elsewhere (another entry
/// that refers to this one, say) keep their place in the document in the detail.
pub fn errors_for_entry(
    errors: Vec<FieldError>,
    c: Collection,
    index: Option<usize>,
) -> Vec<FieldError> {
    let own = index.map(|i| format!("/{}/{i}", c.name()));
    errors
        .into_iter()
        .map(|e| match &own {
            Some(prefix)
                if e.pointer == *prefix || e.pointer.starts_with(&format!("{prefix}/")) =>
            {
                FieldError::new(&e.pointer[prefix.len()..], e.detail)
            }
            _ => FieldError::new(
                "",
                format!("{} (in the routing data at `{}`)", e.detail, e.pointer),
            ),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    #[test]
    fn an_entry_is_replaced_in_place_or_appended() {
        let data = RoutingData::default();
        let (data, i) = upsert(
            data,
            Collection::Rules,
            "a",
            &json!({"when": "true", "ladder": "x"}),
        )
        .unwrap();
        assert_eq!((i, data.rules[0].id.as_str()), (0, "a"));
        let (data, i) = upsert(
            data,
            Collection::Rules,
            "b",
            &json!({"when": "false", "ladder": "x"}),
        )
        .unwrap();
        assert_eq!(i, 1);
        let (data, i) = upsert(
            data,
            Collection::Rules,
            "a",
            &json!({"when": "1 == 1", "ladder": "y"}),
        )
        .unwrap();
        assert_eq!((i, data.rules[0].when.as_str()), (0, "1 == 1"));
        assert!(remove(data.clone(), Collection::Rules, "zzz").is_none());
        assert_eq!(remove(data, Collection::Rules, "a").unwrap().rules.len(), 1);
    }

    #[test]
    fn a_body_naming_another_entry_is_refused() {
        let e = upsert(
            RoutingData::default(),
            Collection::Channels,
            "a",
            &json!({"code": "b"}),
        )
        .unwrap_err();
        assert_eq!(e[0].pointer, "/code");
    }

    #[test]
    fn errors_in_the_entry_point_into_the_body() {
        let errors = vec![
            FieldError::new("/rules/2/when", "bad"),
            FieldError::new("/ladders/0/rungs/1/channel", "gone"),
        ];
        let out = errors_for_entry(errors, Collection::Rules, Some(2));
        assert_eq!(out[0].pointer, "/when");
        assert_eq!(out[1].pointer, "");
        assert!(out[1].detail.contains("/ladders/0/rungs/1/channel"));
    }
}
