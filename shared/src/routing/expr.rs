//! Conditions: CEL expressions (the `cel` crate) over the facts of one complaint.
//!
//! CEL is a small, side-effect-free expression language with a C-like syntax, widely used
//! for policy conditions (Kubernetes, Envoy, Google IAM). The `cel` crate parses and
//! evaluates it but has no type checker, so [`Condition::compile`] adds the checks a
//! tenant administrator needs when saving: syntax, names (variables, their fields and
//! functions, each with the line and column where it is written), and a trial run on two
//! sample complaints that catches type errors and non-boolean results.

use std::{
    collections::{BTreeSet, HashMap},
    sync::{Arc, OnceLock},
};

use cel::{
    common::ast::{EntryExpr, Expr, IdedExpr},
    Context, Env, Program, Value,
};
use chrono::{Datelike, NaiveDate};

use super::providers::ProviderMatch;

/// What a condition can see of a complaint.
#[derive(Clone, Debug, PartialEq)]
pub struct Facts {
    pub category: String,
    /// `consumer` or `merchant`.
    pub complainant_kind: String,
    pub region: String,
    /// `respondent.provider` as written.
    pub provider_written: String,
    /// The directory entry it matched, if any.
    pub provider: Option<ProviderMatch>,
    pub amount: Option<f64>,
    pub currency: String,
    pub desired_outcomes: Vec<String>,
    /// Evidence kinds present.
    pub evidence: BTreeSet<String>,
    pub prior_contacts: Vec<PriorContactFact>,
    /// Channels already tried: the prior contacts, and the rungs the case has been on.
    pub tried: BTreeSet<String>,
    pub occurred_on: Option<NaiveDate>,
    /// The tenant's date when the condition is evaluated.
    pub today: NaiveDate,
    pub summary: String,
    pub description: String,
}

#[derive(Clone, Debug, PartialEq)]
pub struct PriorContactFact {
    pub channel: String,
    pub on: NaiveDate,
    pub outcome: String,
    pub reference: String,
}

impl Facts {
    /// Whole days from the incident to today; 0 when the complaint gives no date, so an
    /// unknown date never makes a rung refuse the case.
    pub fn incident_age_days(&self) -> i64 {
        self.occurred_on
            .map(|d| (self.today - d).num_days().max(0))
            .unwrap_or(0)
    }

    /// Whole years from the incident to today, counted like an age: the third anniversary
    /// of the incident is the day the age becomes 3.
    pub fn incident_age_years(&self) -> i64 {
        let Some(d) = self.occurred_on else {
            return 0;
        };
        let mut years = i64::from(self.today.year() - d.year());
        if (self.today.month(), self.today.day()) < (d.month(), d.day()) {
            years -= 1;
        }
        years.max(0)
    }
}

/// Variables a condition may use, with the fields of those that are maps.
pub const VARIABLES: [(&str, &[&str]); 11] = [
    ("category", &[]),
    ("complainant", &["kind", "region"]),
    (
        "provider",
        &["name", "code", "known", "kind", "institution"],
    ),
    ("amount", &[]),
    ("currency", &[]),
    ("desired_outcomes", &[]),
    ("evidence", &[]),
    ("prior_contacts", &[]),
    ("summary", &[]),
    ("description", &[]),
    ("tried_channels", &[]),
];

/// Helper functions of this hub, beside CEL's standard ones.
pub const HELPERS: [&str; 5] = [
    "incident_age_days",
    "incident_age_years",
    "has_incident_date",
    "has_evidence",
    "tried",
];

/// CEL standard functions a condition may call (operators are always allowed).
const STANDARD_FUNCTIONS: [&str; 16] = [
    "size",
    "contains",
    "startsWith",
    "endsWith",
    "matches",
    "int",
    "uint",
    "double",
    "string",
    "bool",
    "bytes",
    "type",
    "dyn",
    "max",
    "min",
    "has",
];

/// Type names CEL lets an expression mention, as in `type(amount) == double`.
const TYPE_NAMES: [&str; 10] = [
    "int",
    "uint",
    "double",
    "string",
    "bool",
    "bytes",
    "list",
    "map",
    "null_type",
    "type",
];

/// Conditions longer than this are refused: a condition is a sentence, not a program.
pub const MAX_LEN: usize = 2000;

/// Why a condition cannot be saved, and where (1-based line and column, in characters).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("line {line}, column {column}: {message}")]
pub struct ExprError {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

fn env() -> Arc<Env> {
    static ENV: OnceLock<Arc<Env>> = OnceLock::new();
    ENV.get_or_init(|| Arc::new(Env::stdlib())).clone()
}

/// A checked, compiled condition.
#[derive(Debug)]
pub struct Condition {
    source: String,
    program: Program,
}

impl Condition {
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Parses and checks `source`. The trial run evaluates it on a full and an empty
    /// sample complaint: an expression that fails or gives a non-boolean there would fail
    /// on real complaints too.
    pub fn compile(source: &str) -> Result<Condition, ExprError> {
        if source.trim().is_empty() {
            return Err(ExprError {
                line: 1,
                column: 1,
                message: "the condition is empty; write `true` for a condition that always holds"
                    .into(),
            });
        }
        if source.chars().count() > MAX_LEN {
            return Err(ExprError {
                line: 1,
                column: MAX_LEN + 1,
                message: format!("the condition is longer than {MAX_LEN} characters"),
            });
        }
        let program = env().compile(source).map_err(|errors| {
            let first = errors.errors.first();
            ExprError {
                line: first.map(|e| e.pos.0.max(1) as usize).unwrap_or(1),
                // The parser counts columns from 0.
                column: first.map(|e| e.pos.1.max(0) as usize + 1).unwrap_or(1),
                message: first
                    .map(|e| e.msg.clone())
                    .unwrap_or_else(|| "syntax error".into()),
            }
        })?;
        let condition = Condition {
            source: source.to_owned(),
            program,
        };
        condition.check_names()?;
        for (label, sample) in [
            ("a complaint with every field filled", sample_full()),
            ("a complaint with only the required fields", sample_empty()),
        ] {
            if let Err(message) = condition.evaluate(&sample) {
                return Err(ExprError {
                    line: 1,
                    column: 1,
                    message: format!("evaluating it on {label} fails: {message}"),
                });
            }
        }
        Ok(condition)
    }

    /// Evaluates the condition. An error (a type mismatch the trial run did not meet)
    /// comes back as its message; callers treat it as `false` and record why.
    pub fn evaluate(&self, facts: &Facts) -> Result<bool, String> {
        self.evaluate_in(&FactsContext::new(facts))
    }

    /// The same against facts already made into a context: a caller evaluating several
    /// conditions on one complaint builds it once.
    pub fn evaluate_in(&self, facts: &FactsContext) -> Result<bool, String> {
        match self.program.execute(&facts.0) {
            Ok(Value::Bool(b)) => Ok(b),
            Ok(other) => Err(format!(
                "the condition must give true or false, not {}",
                describe(&other)
            )),
            Err(e) => Err(e.to_string()),
        }
    }

    fn check_names(&self) -> Result<(), ExprError> {
        let mut scope: Vec<String> = Vec::new();
        self.walk(self.program.expression(), &mut scope)
    }

    /// The error at the node `id`, which spells `word`. The parser's offsets are not in
    /// characters once the text has non-ASCII characters, so the position reported is that
    /// of the occurrence of `word` (outside string literals) nearest to the parser's.
    fn at(&self, id: u64, word: &str, message: String) -> ExprError {
        let hint = self
            .program
            .source_info()
            .offset_for(id)
            .map(|(start, _)| start as usize)
            .unwrap_or(0);
        let offset = locate(&self.source, word, hint).unwrap_or(hint);
        let (line, column) = line_column(&self.source, offset);
        ExprError {
            line,
            column,
            message,
        }
    }

    fn walk(&self, e: &IdedExpr, scope: &mut Vec<String>) -> Result<(), ExprError> {
        match &e.expr {
            Expr::Ident(name) => {
                let known = scope.iter().any(|s| s == name)
                    || VARIABLES.iter().any(|(v, _)| v == name)
                    || TYPE_NAMES.contains(&name.as_str());
                if !known {
                    return Err(self.at(
                        e.id,
                        name,
                        format!(
                            "unknown name `{name}`; conditions can use {}",
                            VARIABLES.map(|(v, _)| v).join(", ")
                        ),
                    ));
                }
                Ok(())
            }
            Expr::Select(select) => {
                if let Expr::Ident(var) = &select.operand.expr {
                    if !scope.iter().any(|s| s == var) {
                        if let Some((_, fields)) = VARIABLES.iter().find(|(v, _)| v == var) {
                            if !fields.contains(&select.field.as_str()) {
                                return Err(self.at(
                                    e.id,
                                    &select.field,
                                    if fields.is_empty() {
                                        format!("`{var}` has no fields")
                                    } else {
                                        format!(
                                            "`{var}` has no field `{}`; its fields are {}",
                                            select.field,
                                            fields.join(", ")
                                        )
                                    },
                                ));
                            }
                        }
                    }
                }
                self.walk(&select.operand, scope)
            }
            Expr::Call(call) => {
                let name = call.func_name.as_str();
                let is_operator = !name.starts_with(|c: char| c.is_ascii_alphabetic());
                if !is_operator && !STANDARD_FUNCTIONS.contains(&name) && !HELPERS.contains(&name) {
                    return Err(self.at(
                        e.id,
                        name,
                        format!(
                            "unknown function `{name}`; the hub's helpers are {}",
                            HELPERS.join(", ")
                        ),
                    ));
                }
                if let Some(target) = &call.target {
                    self.walk(target, scope)?;
                }
                for arg in &call.args {
                    self.walk(arg, scope)?;
                }
                Ok(())
            }
            Expr::List(list) => {
                for item in &list.elements {
                    self.walk(item, scope)?;
                }
                Ok(())
            }
            Expr::Map(map) => {
                for entry in &map.entries {
                    if let EntryExpr::MapEntry(m) = &entry.expr {
                        self.walk(&m.key, scope)?;
                        self.walk(&m.value, scope)?;
                    }
                }
                Ok(())
            }
            Expr::Struct(s) => Err(self.at(
                e.id,
                &s.type_name,
                format!("building a `{}` message is not supported here", s.type_name),
            )),
            Expr::Comprehension(c) => {
                self.walk(&c.iter_range, scope)?;
                self.walk(&c.accu_init, scope)?;
                let depth = scope.len();
                scope.push(c.iter_var.clone());
                if let Some(v) = &c.iter_var2 {
                    scope.push(v.clone());
                }
                scope.push(c.accu_var.clone());
                let result = self
                    .walk(&c.loop_cond, scope)
                    .and_then(|_| self.walk(&c.loop_step, scope))
                    .and_then(|_| self.walk(&c.result, scope));
                scope.truncate(depth);
                result
            }
            Expr::Literal(_) | Expr::Unspecified => Ok(()),
        }
    }
}

/// The character offset of the whole-word occurrence of `word` outside string literals
/// that is nearest to `hint`.
fn locate(source: &str, word: &str, hint: usize) -> Option<usize> {
    let chars: Vec<char> = source.chars().collect();
    let w: Vec<char> = word.chars().collect();
    if w.is_empty() {
        return None;
    }
    let is_word = |c: char| c.is_alphanumeric() || c == '_';
    let mut quote: Option<char> = None;
    let mut best: Option<usize> = None;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match quote {
            Some(q) => {
                if c == '\\' {
                    i += 1;
                } else if c == q {
                    quote = None;
                }
            }
            None if c == '\'' || c == '"' => quote = Some(c),
            None => {
                let fits = chars[i..].starts_with(&w)
                    && (i == 0 || !is_word(chars[i - 1]))
                    && chars.get(i + w.len()).is_none_or(|n| !is_word(*n));
                if fits && best.is_none_or(|b| b.abs_diff(hint) > i.abs_diff(hint)) {
                    best = Some(i);
                }
            }
        }
        i += 1;
    }
    best
}

/// 1-based line and column (in characters) of a character offset into `source`.
fn line_column(source: &str, offset: usize) -> (usize, usize) {
    let mut line = 1;
    let mut column = 1;
    for c in source.chars().take(offset) {
        if c == '\n' {
            line += 1;
            column = 1;
        } else {
            column += 1;
        }
    }
    (line, column)
}

fn describe(v: &Value) -> &'static str {
    match v {
        Value::List(_) => "a list",
        Value::Map(_) => "a map",
        Value::Int(_) | Value::UInt(_) => "a number",
        Value::Float(_) => "a number",
        Value::String(_) => "a string",
        Value::Null => "null",
        _ => "a value of another type",
    }
}

fn string(s: &str) -> Value {
    Value::String(Arc::new(s.to_owned()))
}

fn strings<'a>(items: impl IntoIterator<Item = &'a String>) -> Value {
    Value::List(Arc::new(items.into_iter().map(|s| string(s)).collect()))
}

fn map(entries: Vec<(&'static str, Value)>) -> Value {
    let m: HashMap<&'static str, Value> = entries.into_iter().collect();
    Value::from(m)
}

/// A complaint's facts as the variables and functions conditions read. Building it copies
/// every fact into the interpreter's values, which cost more than evaluating a typical
/// condition (perf: most of the router's CPU when it was built per condition), so a
/// decision builds it once for all its conditions.
pub struct FactsContext(Context<'static, 'static>);

impl FactsContext {
    pub fn new(facts: &Facts) -> Self {
        Self(context_for(facts))
    }
}

fn context_for(f: &Facts) -> Context<'static, 'static> {
    let mut ctx = Context::with_env(env());
    ctx.add_variable_from_value("category", string(&f.category));
    ctx.add_variable_from_value(
        "complainant",
        map(vec![
            ("kind", string(&f.complainant_kind)),
            ("region", string(&f.region)),
        ]),
    );
    let p = f.provider.as_ref();
    ctx.add_variable_from_value(
        "provider",
        map(vec![
            ("name", string(&f.provider_written)),
            ("code", string(p.map(|p| p.code.as_str()).unwrap_or(""))),
            ("known", Value::Bool(p.is_some())),
            ("kind", string(p.map(|p| p.kind.as_str()).unwrap_or(""))),
            (
                "institution",
                string(
                    p.and_then(|p| p.institution.as_ref())
                        .map(|i| i.code.as_str())
                        .unwrap_or(""),
                ),
            ),
        ]),
    );
    ctx.add_variable_from_value("amount", Value::Float(f.amount.unwrap_or(0.0)));
    ctx.add_variable_from_value("currency", string(&f.currency));
    ctx.add_variable_from_value("desired_outcomes", strings(&f.desired_outcomes));
    ctx.add_variable_from_value("evidence", strings(&f.evidence));
    ctx.add_variable_from_value(
        "prior_contacts",
        Value::List(Arc::new(
            f.prior_contacts
                .iter()
                .map(|c| {
                    map(vec![
                        ("channel", string(&c.channel)),
                        ("on", string(&c.on.to_string())),
                        ("outcome", string(&c.outcome)),
                        ("reference", string(&c.reference)),
                    ])
                })
                .collect(),
        )),
    );
    ctx.add_variable_from_value("summary", string(&f.summary));
    ctx.add_variable_from_value("description", string(&f.description));
    ctx.add_variable_from_value("tried_channels", strings(&f.tried));

    let age_days = f.incident_age_days();
    let age_years = f.incident_age_years();
    let has_date = f.occurred_on.is_some();
    let evidence = Arc::new(f.evidence.clone());
    let tried = Arc::new(f.tried.clone());
    // Registration fails only for a name the standard library already declares; these
    // names are the hub's own and a unit test evaluates each of them.
    let _ = ctx.add_function("incident_age_days", move || age_days);
    let _ = ctx.add_function("incident_age_years", move || age_years);
    let _ = ctx.add_function("has_incident_date", move || has_date);
    let _ = ctx.add_function("has_evidence", move |kind: Arc<String>| {
        evidence.contains(kind.as_str())
    });
    let _ = ctx.add_function("tried", move |channel: Arc<String>| {
        tried.contains(channel.as_str())
    });
    ctx
}

fn sample_full() -> Facts {
    let today = NaiveDate::from_ymd_opt(2026, 11, 20).unwrap_or_default();
    Facts {
        category: "deposit_not_refunded".into(),
        complainant_kind: "consumer".into(),
        region: "310115".into(),
        provider_written: "拉卡拉".into(),
        provider: Some(ProviderMatch {
            code: "lakala".into(),
            name: "拉卡拉支付股份有限公司".into(),
            kind: "agent".into(),
            matched: "拉卡拉".into(),
            how: "exact".into(),
            institution: Some(super::providers::InstitutionRef {
                code: "institution".into(),
                name: "Institution".into(),
                hotline: None,
            }),
            hotline: Some("95016".into()),
            hotline_verified: false,
        }),
        amount: Some(299.0),
        currency: "CNY".into(),
        desired_outcomes: vec!["refund".into()],
        evidence: ["payment_receipt".to_owned()].into(),
        prior_contacts: vec![PriorContactFact {
            channel: "provider_service".into(),
            on: today,
            outcome: "refused".into(),
            reference: "A123".into(),
        }],
        tried: ["provider_service".to_owned()].into(),
        occurred_on: today.checked_sub_days(chrono::Days::new(400)),
        today,
        summary: "押金".into(),
        description: "押金".into(),
    }
}

fn sample_empty() -> Facts {
    Facts {
        category: "other".into(),
        complainant_kind: "merchant".into(),
        region: String::new(),
        provider_written: "x".into(),
        provider: None,
        amount: None,
        currency: String::new(),
        desired_outcomes: Vec::new(),
        evidence: BTreeSet::new(),
        prior_contacts: Vec::new(),
        tried: BTreeSet::new(),
        occurred_on: None,
        today: NaiveDate::from_ymd_opt(2026, 11, 20).unwrap_or_default(),
        summary: String::new(),
        description: String::new(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn eval(source: &str, facts: &Facts) -> bool {
        Condition::compile(source).unwrap().evaluate(facts).unwrap()
    }

    #[test]
    fn conditions_see_the_complaint_and_the_helpers() {
        let f = sample_full();
        assert!(eval("category == 'deposit_not_refunded'", &f));
        assert!(eval(
            "complainant.kind == 'consumer' && complainant.region.startsWith('31')",
            &f
        ));
        assert!(eval(
            "provider.known && provider.code == 'lakala' && provider.kind == 'agent'",
            &f
        ));
        assert!(eval("provider.institution == 'institution'", &f));
        assert!(eval(
            "has_evidence('payment_receipt') && !has_evidence('contract')",
            &f
        ));
        assert!(eval("'payment_receipt' in evidence", &f));
        assert!(eval(
            "tried('provider_service') && !tried('pboc_12363')",
            &f
        ));
        assert!(eval(
            "incident_age_days() == 400 && incident_age_years() == 1",
            &f
        ));
        assert!(eval("has_incident_date()", &f));
        assert!(eval("amount >= 299.0 && currency == 'CNY'", &f));
        assert!(eval(
            "prior_contacts.exists(c, c.channel == 'provider_service' && c.outcome == 'refused')",
            &f
        ));
        assert!(eval(
            "'refund' in desired_outcomes && summary.contains('押金')",
            &f
        ));
        assert!(eval("size(tried_channels) == 1", &f));
        assert!(eval(
            "category in ['deposit_not_refunded', 'hidden_fee']",
            &f
        ));
    }

    #[test]
    fn an_unknown_incident_date_counts_as_age_zero() {
        let f = sample_empty();
        assert!(eval(
            "incident_age_days() == 0 && incident_age_years() == 0",
            &f
        ));
        assert!(eval("!has_incident_date()", &f));
        assert!(eval("!provider.known && provider.code == ''", &f));
    }

    #[test]
    fn the_age_in_years_turns_on_the_anniversary() {
        let mut f = sample_empty();
        f.today = NaiveDate::from_ymd_opt(2026, 5, 1).unwrap();
        f.occurred_on = NaiveDate::from_ymd_opt(2023, 5, 2);
        assert_eq!(f.incident_age_years(), 2);
        f.occurred_on = NaiveDate::from_ymd_opt(2023, 5, 1);
        assert_eq!(f.incident_age_years(), 3);
        f.occurred_on = NaiveDate::from_ymd_opt(2024, 2, 29);
        f.today = NaiveDate::from_ymd_opt(2025, 2, 28).unwrap();
        assert_eq!(f.incident_age_years(), 0);
    }

    #[test]
    fn a_syntax_error_names_its_line_and_column() {
        let e = Condition::compile("category == ").unwrap_err();
        assert_eq!(e.line, 1);
        assert!(e.column >= 12, "{e}");
        let e = Condition::compile("category ==\n  'a' &&& true").unwrap_err();
        assert_eq!(e.line, 2, "{e}");
    }

    #[test]
    fn an_unknown_name_is_refused_where_it_is_written() {
        let e = Condition::compile("category == 'x' || categroy == 'y'").unwrap_err();
        assert_eq!((e.line, e.column), (1, 20), "{e}");
        assert!(e.message.contains("categroy"), "{e}");
        // Positions count characters, so Chinese text before the name does not shift it.
        let e = Condition::compile("summary == '押金押金' && nope").unwrap_err();
        assert_eq!((e.line, e.column), (1, 22), "{e}");
        // A name inside a string literal is not the one meant.
        let e = Condition::compile("summary == 'nope' && nope").unwrap_err();
        assert_eq!((e.line, e.column), (1, 22), "{e}");
    }

    #[test]
    fn an_unknown_field_or_function_is_refused() {
        let e = Condition::compile("complainant.knd == 'consumer'").unwrap_err();
        assert!(e.message.contains("knd"), "{e}");
        let e = Condition::compile("has_evidense('contract')").unwrap_err();
        assert!(e.message.contains("has_evidense"), "{e}");
        assert_eq!((e.line, e.column), (1, 1), "{e}");
    }

    #[test]
    fn comprehension_variables_are_in_scope_only_inside() {
        assert!(Condition::compile("evidence.all(k, k != 'other')").is_ok());
        assert!(Condition::compile("evidence.all(k, k != 'other') && k == 'x'").is_err());
    }

    #[test]
    fn a_type_error_or_a_non_boolean_is_refused() {
        let e = Condition::compile("complainant.kind > 3").unwrap_err();
        assert!(e.message.contains("fails"), "{e}");
        let e = Condition::compile("incident_age_days()").unwrap_err();
        assert!(e.message.contains("true or false"), "{e}");
        assert!(Condition::compile("   ").is_err());
    }
}
