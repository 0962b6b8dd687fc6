//! Checks: judges a parsed attribute and function, reports every problem at the span of the
//! token at fault, and makes the checked models `expand` works from.
//!
//! Problems are reported in this order: the function's signature, its parameters and its
//! output as written, each option's value (in the order written), what options say together,
//! the injected parameters, the recorded arguments, and last the name.

use proc_macro2::Span;
use syn::ext::IdentExt as _;
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{FnArg, GenericArgument, Ident, LitStr, PathArguments, Signature, Token, Type};

use crate::ast::{Binding, Input, Macro, Options, Param, TypedParam};
use crate::errors::Errors;
use crate::model::{Arg, Injected, TaskDef, TaskOptions, WorkflowDef};
use crate::symbol::{
    CACHE, CACHE_TTL, FALLBACK, MAX_CONCURRENCY, METADATA, NAME, OUTPUT_STORAGE, RETRY_BACKOFF, RETRY_DELAY,
    RETRY_MAX_ATTEMPTS, ROLLBACK, SCHEDULE, SECRET_REQUESTS, Symbol, TIMEOUT, TIMEZONE, VERSION,
};
use crate::value;

/// A kind of parameter flux fills in itself: recognised by the name of its type, and taken
/// only when an option asks for it.
struct InjectedKind {
    /// What such a parameter is marked as.
    injected: Injected,
    /// The last segment of the type's path (`Secrets` matches `flux::secrets::Secrets` too).
    type_name: &'static str,
    /// The option that asks for the parameter.
    option: Symbol,
    /// Whether the checked options ask for the parameter.
    asked: fn(&TaskOptions) -> bool,
    /// The parameter is there, the option does not ask for it (reported at the type).
    without_option: &'static str,
    /// The option asks for the parameter, which is not there (reported at the option's key).
    without_parameter: &'static str,
    /// The parameter is there more than once (reported at the parameter list).
    twice: &'static str,
}

/// The parameters flux fills in, in the order they are checked.
const INJECTED: &[InjectedKind] = &[
    InjectedKind {
        injected: Injected::Secrets,
        type_name: "Secrets",
        option: SECRET_REQUESTS,
        asked: |options| options.secret_requests.is_some(),
        without_option: "a `Secrets` parameter is filled in by flux: name the secrets with `secret_requests = [\"NAME\"]`",
        without_parameter: "`secret_requests` needs a parameter of type `Secrets` to fill in",
        twice: "a task can take only one `Secrets` parameter",
    },
    InjectedKind {
        injected: Injected::Metadata,
        type_name: "TaskMetadata",
        option: METADATA,
        asked: |options| options.metadata,
        without_option: "a `TaskMetadata` parameter is filled in by flux: add `metadata = true` to the task's options",
        without_parameter: "`metadata = true` needs a parameter of type `TaskMetadata` to fill in",
        twice: "a task can take only one `TaskMetadata` parameter",
    },
];

/// Checks a parsed `#[task]`; `errors` holds what parsing found.
pub(crate) fn task(input: Input, mut errors: Errors) -> syn::Result<TaskDef> {
    let Input { options: written, item, params, output } = input;
    check_signature(&item.sig, Macro::Task, &mut errors);
    let mut args = task_args(&params, &mut errors);
    check_owned(&output.ty, "a task's output", &mut errors);
    let options = task_options(&written, &mut errors);
    mark_state(&mut args);
    check_injected(&mut args, &written, &options, &item.sig.inputs, &mut errors);
    // Everything else is a recorded argument and must be storable.
    for arg in args.iter().filter(|a| a.injected.is_none()) {
        check_owned(&arg.ty, "a task argument", &mut errors);
    }
    let (name, templated) = task_name(options.name.as_ref(), &item.sig.ident, &args, &mut errors);
    errors.finish()?;
    let is_async = item.sig.asyncness.is_some();
    Ok(TaskDef { item, is_async, args, output, options, name, templated })
}

/// Checks a parsed `#[workflow]`; `errors` holds what parsing found.
pub(crate) fn workflow(input: Input, mut errors: Errors) -> syn::Result<WorkflowDef> {
    let Input { options: written, item, params, output } = input;
    check_signature(&item.sig, Macro::Workflow, &mut errors);
    if item.sig.asyncness.is_none() {
        errors.add(item.sig.fn_token.span(), "a workflow must be an `async fn`");
    }
    let mut name = item.sig.ident.unraw().to_string();
    let mut secret_requests = Vec::new();
    let mut output_storage = None;
    let mut version = 1;
    let mut schedule = None;
    let mut timezone = None;
    let mut max_concurrency = None;
    for option in written.iter() {
        let (key, value) = (option.name, &option.value);
        match key {
            NAME => {
                if let Some(lit) = value::string(value, key, &mut errors) {
                    if lit.value().trim().is_empty() {
                        errors.add(lit.span(), "a workflow name cannot be empty");
                    }
                    name = lit.value();
                }
            }
            SECRET_REQUESTS => secret_requests = value::secret_names(value, key, &mut errors),
            OUTPUT_STORAGE => output_storage = value::storage(value, key, &mut errors),
            VERSION => match value::count(value, key, &mut errors) {
                Some(0) => errors.add_spanned(value, "`version` starts at 1"),
                Some(n) => version = n,
                None => {}
            },
            MAX_CONCURRENCY => match value::count(value, key, &mut errors) {
                Some(0) => errors.add_spanned(value, "`max_concurrency` is at least 1"),
                Some(n) => max_concurrency = Some(n),
                None => {}
            },
            SCHEDULE => {
                if let Some(lit) = value::string(value, key, &mut errors) {
                    check_cron(&lit, &mut errors);
                    schedule = Some(lit.value());
                }
            }
            TIMEZONE => {
                if let Some(lit) = value::string(value, key, &mut errors) {
                    if lit.value().trim().is_empty() {
                        errors.add(lit.span(), "a time zone cannot be empty: name one, such as `Europe/Paris`");
                    }
                    timezone = Some((lit.value(), lit.span()));
                }
            }
            _ => {}
        }
    }
    let timezone = match (timezone, &schedule) {
        (Some((_, span)), None) => {
            errors.add(span, "`timezone` is the time zone of a `schedule`, and this workflow has none");
            None
        }
        (zone, _) => zone.map(|(zone, _)| zone),
    };
    let input = workflow_input(&params, &item.sig, &mut errors);
    check_owned(&output.ty, "a workflow's output", &mut errors);
    errors.finish()?;
    let input = input.ok_or_else(|| syn::Error::new(Span::call_site(), NEEDS_CONTEXT))?;
    Ok(WorkflowDef {
        item,
        name,
        version,
        secret_requests,
        output_storage,
        schedule,
        timezone,
        max_concurrency,
        input,
        output,
    })
}

/// Checks the cron expression of `schedule = ".."`: 5 or 6 fields, each one the parser of
/// flux's schedules accepts (with feature `schedule`; without it, the expansion names the
/// feature).
fn check_cron(lit: &syn::LitStr, errors: &mut Errors) {
    let expression = lit.value();
    let fields = expression.split_whitespace().count();
    if !(5..=6).contains(&fields) {
        errors.add(
            lit.span(),
            format!(
                "invalid cron expression: it has {fields} fields; expected 5 (minute hour day-of-month month \
                 day-of-week) or 6 (with seconds first)"
            ),
        );
    } else if let Err(message) = parse_cron(&expression) {
        errors.add(lit.span(), message);
    }
}

/// The parser of flux's schedules, on an expression of the right number of fields.
#[cfg(feature = "schedule")]
fn parse_cron(expression: &str) -> Result<(), String> {
    use croner::parser::{CronParser, Seconds, Year};
    let parser = CronParser::builder().seconds(Seconds::Optional).year(Year::Disallowed).build();
    parser.parse(expression).map(drop).map_err(|e| format!("invalid cron expression `{expression}`: {e}"))
}

/// Without feature `schedule`, the fields are not read: the expansion names the feature.
#[cfg(not(feature = "schedule"))]
fn parse_cron(_expression: &str) -> Result<(), String> {
    Ok(())
}

/// What neither a task nor a workflow can be: `const`, `unsafe`, `extern`, generic, variadic.
fn check_signature(sig: &Signature, which: Macro, errors: &mut Errors) {
    let what = which.what();
    if let Some(c) = &sig.constness {
        errors.add(c.span(), format!("a {what} cannot be a `const fn`"));
    }
    if let syn::Safety::Unsafe(u) = &sig.safety {
        errors.add(u.span(), format!("a {what} cannot be `unsafe`"));
    }
    if let Some(abi) = &sig.abi {
        errors.add_spanned(abi, format!("a {what} cannot have an `extern` ABI"));
    }
    if !sig.generics.params.is_empty() || sig.generics.where_clause.is_some() {
        errors.add_spanned(
            &sig.generics,
            format!("a {what} cannot be generic: its values are recorded with concrete types"),
        );
    }
    if let Some(v) = &sig.variadic {
        errors.add(v.span(), format!("a {what} cannot be variadic"));
    }
}

/// A task's parameters, each a plain name (`_` gets one) with no attributes.
fn task_args(params: &[Param], errors: &mut Errors) -> Vec<Arg> {
    let mut args = Vec::new();
    for param in params {
        let Some(TypedParam { attrs, binding, ty }) = &param.typed else {
            errors.add_spanned(&param.written, "a task cannot take `self`: make it a free function");
            continue;
        };
        if let Some(attr) = attrs.first() {
            errors.add_spanned(attr, "attributes on task parameters are not supported");
        }
        let (ident, mutable) = match binding {
            Binding::Name { ident, mutable } => (ident.clone(), *mutable),
            // `_: T` is an argument like any other; it just has no name to use.
            Binding::Wild(span) => (Ident::new(&format!("__flux_arg{}", args.len()), *span), false),
            Binding::Pattern(pat) => {
                errors.add_spanned(pat, "task arguments must be plain names (`order: Order`), not patterns");
                continue;
            }
        };
        args.push(Arg { ident, mutable, ty: ty.clone(), injected: None });
    }
    args
}

/// Reads each option's value, in the order written, then checks what they say together.
fn task_options(written: &Options, errors: &mut Errors) -> TaskOptions {
    let mut options = TaskOptions::default();
    for option in written.iter() {
        let (key, value) = (option.name, &option.value);
        match key {
            NAME => options.name = value::string(value, key, errors),
            RETRY_MAX_ATTEMPTS => options.retry_max_attempts = value::count(value, key, errors).unwrap_or(0),
            RETRY_DELAY => options.retry_delay = value::duration(value, key, errors),
            RETRY_BACKOFF => options.retry_backoff = value::positive_number(value, key, errors),
            TIMEOUT => options.timeout = value::duration(value, key, errors),
            FALLBACK => options.fallback = value::function_path(value, key, errors),
            ROLLBACK => options.rollback = value::function_path(value, key, errors),
            CACHE => options.cache = value::boolean(value, key, errors),
            CACHE_TTL => options.cache_ttl = value::duration(value, key, errors),
            METADATA => options.metadata = value::boolean(value, key, errors),
            SECRET_REQUESTS => options.secret_requests = Some(value::secret_names(value, key, errors)),
            OUTPUT_STORAGE => options.output_storage = value::storage(value, key, errors),
            MAX_CONCURRENCY => match value::count(value, key, errors) {
                Some(0) => errors.add_spanned(value, "`max_concurrency` is at least 1"),
                n => options.max_concurrency = n,
            },
            _ => {}
        }
    }
    // A time to live turns the cache on: it must be longer than zero, and not next to `cache = false`.
    if let Some(ttl) = options.cache_ttl
        && let Some(written_ttl) = written.get(CACHE_TTL)
    {
        if ttl.is_zero() {
            errors.add_spanned(&written_ttl.value, format!("`{CACHE_TTL}` must be longer than zero"));
        }
        if written.get(CACHE).is_some_and(|cache| value::is_bool(&cache.value, false)) {
            errors.add(
                written_ttl.key.span(),
                format!("`{CACHE_TTL}` turns the cache on; it contradicts `{CACHE} = false`"),
            );
        }
    }
    options
}

/// Marks the parameters flux fills in, following [`INJECTED`]: reports each such parameter its
/// option does not ask for, each option asking for a parameter that is not there, and each
/// such parameter given twice.
fn check_injected(
    args: &mut [Arg],
    written: &Options,
    options: &TaskOptions,
    inputs: &Punctuated<FnArg, Token![,]>,
    errors: &mut Errors,
) {
    for kind in INJECTED {
        let asked = (kind.asked)(options);
        let mut found = 0;
        for arg in args.iter_mut().filter(|a| is_named(&a.ty, kind.type_name)) {
            if asked {
                arg.injected = Some(kind.injected);
                found += 1;
            } else {
                errors.add_spanned(&arg.ty, kind.without_option);
            }
        }
        match found {
            0 if asked => {
                let span = written.get(kind.option).map_or_else(Span::call_site, |o| o.key.span());
                errors.add(span, kind.without_parameter);
            }
            0 | 1 => {}
            _ => errors.add_spanned(inputs, kind.twice),
        }
    }
}

/// Marks the `State<T>` parameters (one type argument, `flux::State<T>` too): flux fills each in
/// from the state given to the engine, whatever the options say.
fn mark_state(args: &mut [Arg]) {
    for arg in args.iter_mut() {
        let Type::Path(p) = &arg.ty else { continue };
        let Some(last) = p.path.segments.last() else { continue };
        let one_type = match &last.arguments {
            syn::PathArguments::AngleBracketed(a) => {
                a.args.len() == 1 && matches!(a.args.first(), Some(syn::GenericArgument::Type(_)))
            }
            _ => false,
        };
        if p.qself.is_none() && last.ident == "State" && one_type {
            arg.injected = Some(Injected::State);
        }
    }
}

/// The task's name, and whether it is a template over the recorded arguments.
fn task_name(written: Option<&LitStr>, ident: &Ident, args: &[Arg], errors: &mut Errors) -> (String, bool) {
    let Some(lit) = written else {
        return (ident.unraw().to_string(), false);
    };
    let text = lit.value();
    if text.trim().is_empty() {
        errors.add(lit.span(), "a task name cannot be empty");
    }
    let placeholders = match template_placeholders(&text) {
        Ok(placeholders) => placeholders,
        Err(msg) => {
            errors.add(lit.span(), msg);
            return (text, false);
        }
    };
    let recorded: Vec<&Ident> = args.iter().filter(|a| a.injected.is_none()).map(|a| &a.ident).collect();
    for p in &placeholders {
        if !recorded.iter().any(|ident| *ident == p) {
            let known = if recorded.is_empty() {
                "none".to_string()
            } else {
                recorded.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
            };
            errors.add(
                lit.span(),
                format!("the name template uses `{{{p}}}`, but the task has no argument `{p}` (arguments: {known})"),
            );
        }
    }
    let templated = !placeholders.is_empty() || text.contains("{{") || text.contains("}}");
    (text, templated)
}

/// What a workflow's first parameter must be.
const NEEDS_CONTEXT: &str = "a workflow's first parameter must be `ExecutionContext<I>`, where `I` is its input type";

/// `I` of the workflow's only parameter, `ExecutionContext<I>`.
fn workflow_input(params: &[Param], sig: &Signature, errors: &mut Errors) -> Option<Type> {
    let mut input = None;
    let mut params = params.iter();
    match params.next() {
        None => errors.add(sig.paren_token.span.join(), NEEDS_CONTEXT),
        Some(Param { written, typed: None }) => {
            errors.add_spanned(written, "a workflow cannot take `self`");
        }
        Some(Param { typed: Some(TypedParam { ty, .. }), .. }) => match context_input(ty) {
            Some(ty) => {
                check_owned(&ty, "a workflow's input", errors);
                input = Some(ty);
            }
            None => errors.add_spanned(ty, NEEDS_CONTEXT),
        },
    }
    for extra in params {
        errors.add_spanned(
            &extra.written,
            "a workflow takes only its `ExecutionContext<I>`: put further inputs into `I`",
        );
    }
    input
}

/// `I` from `ExecutionContext<I>` (any path ending in `ExecutionContext`).
fn context_input(ty: &Type) -> Option<Type> {
    let Type::Path(p) = ty else { return None };
    let last = p.path.segments.last()?;
    if last.ident != "ExecutionContext" {
        return None;
    }
    let PathArguments::AngleBracketed(args) = &last.arguments else { return None };
    match args.args.first()? {
        GenericArgument::Type(t) if args.args.len() == 1 => Some(t.clone()),
        _ => None,
    }
}

/// Whether `ty` is (a path ending in) `name`.
fn is_named(ty: &Type, name: &str) -> bool {
    matches!(ty, Type::Path(p) if p.qself.is_none() && p.path.segments.last().is_some_and(|s| s.ident == name))
}

/// Reports `ty` (`what` is it, for the message) if it cannot be recorded and replayed.
fn check_owned(ty: &Type, what: &str, errors: &mut Errors) {
    match ty {
        Type::Reference(r) => errors.add_spanned(
            r,
            format!("{what} must be owned so it can be recorded and replayed: use an owned type (`String`, not `&str`; `Vec<T>`, not `&[T]`)"),
        ),
        Type::ImplTrait(t) => errors.add_spanned(t, format!("{what} cannot be `impl Trait`: use a concrete type")),
        _ => {}
    }
}

/// The placeholders of a name template (`"process_{item}"` gives `item`), or an error message.
fn template_placeholders(template: &str) -> Result<Vec<String>, String> {
    let mut names = Vec::new();
    let mut chars = template.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '{' if chars.peek() == Some(&'{') => {
                chars.next();
            }
            '{' => {
                let mut inner = String::new();
                loop {
                    match chars.next() {
                        Some('}') => break,
                        Some(c) => inner.push(c),
                        None => return Err("unclosed `{` in the name template".to_string()),
                    }
                }
                let name = inner.split(':').next().unwrap_or("").trim().to_string();
                if name.is_empty()
                    || !name.chars().all(|c| c.is_alphanumeric() || c == '_')
                    || name.starts_with(|c: char| c.is_ascii_digit())
                {
                    return Err(format!("placeholder `{{{inner}}}` must name an argument of the task"));
                }
                names.push(name);
            }
            '}' if chars.peek() == Some(&'}') => {
                chars.next();
            }
            '}' => return Err("unmatched `}` in the name template (write `}}` for a literal brace)".to_string()),
            _ => {}
        }
    }
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_injected_kind_has_a_task_option_and_its_own_type() {
        for (i, kind) in INJECTED.iter().enumerate() {
            assert!(crate::symbol::TASK_OPTIONS.contains(&kind.option), "{}", kind.option);
            assert!(INJECTED[i + 1..].iter().all(|other| other.type_name != kind.type_name), "{}", kind.type_name);
            assert!(INJECTED[i + 1..].iter().all(|other| other.injected != kind.injected));
        }
    }

    #[test]
    fn placeholders() {
        assert_eq!(template_placeholders("process_{item}").unwrap(), ["item"]);
        assert_eq!(template_placeholders("{a}_{b:?}").unwrap(), ["a", "b"]);
        assert!(template_placeholders("literal_{{x}}").unwrap().is_empty());
        assert!(template_placeholders("x_{}").is_err());
        assert!(template_placeholders("x_{0}").is_err());
        assert!(template_placeholders("x_{a").is_err());
        assert!(template_placeholders("x_}").is_err());
    }

    /// The cron expression of `schedule = ".."`, as the macro judges it.
    fn cron_error(expression: &str) -> Option<String> {
        let lit = syn::LitStr::new(expression, Span::call_site());
        let mut errors = Errors::default();
        check_cron(&lit, &mut errors);
        errors.finish().err().map(|e| e.to_string())
    }

    #[test]
    fn cron_expressions_of_five_or_six_fields_are_taken_and_others_refused() {
        assert_eq!(cron_error("0 9 * * MON-FRI"), None);
        assert_eq!(cron_error("*/15 * * * * *"), None);
        assert!(cron_error("0 9 * *").is_some_and(|e| e.contains("it has 4 fields")));
        assert!(cron_error("0 0 9 * * * 2027").is_some_and(|e| e.contains("it has 7 fields")));
    }

    #[cfg(feature = "schedule")]
    #[test]
    fn cron_fields_out_of_range_are_refused() {
        for bad in ["0 25 * * *", "61 * * * *", "0 9 * * FUNDAY", "0 9 32 * *"] {
            assert!(cron_error(bad).is_some_and(|e| e.contains("invalid cron expression")), "{bad}");
        }
    }
}
