//! Reading option values. Each reader takes a value as written, reports what is wrong with it
//! at its span, and returns the typed value when there is one. `name` is the option being read,
//! for the messages.

use std::time::Duration;

use syn::{Expr, ExprLit, Lit, LitStr};

use crate::duration;
use crate::errors::Errors;
use crate::symbol::Symbol;

/// A string literal.
pub(crate) fn string(expr: &Expr, name: Symbol, errors: &mut Errors) -> Option<LitStr> {
    match expr {
        Expr::Lit(ExprLit { lit: Lit::Str(s), .. }) => Some(s.clone()),
        other => {
            errors.add_spanned(other, format!("`{name}` must be a string literal"));
            None
        }
    }
}

/// `true` or `false`; `false` (after an error) for anything else.
pub(crate) fn boolean(expr: &Expr, name: Symbol, errors: &mut Errors) -> bool {
    match expr {
        Expr::Lit(ExprLit { lit: Lit::Bool(b), .. }) => b.value,
        other => {
            errors.add_spanned(other, format!("`{name}` must be `true` or `false`"));
            false
        }
    }
}

/// Whether `expr` is written as the literal `value` (`true` or `false`).
pub(crate) fn is_bool(expr: &Expr, value: bool) -> bool {
    matches!(expr, Expr::Lit(ExprLit { lit: Lit::Bool(b), .. }) if b.value == value)
}

/// Whether `expr` is a negative number, written as `-1` (a unary minus, or one literal when it
/// ends the attribute).
fn is_negative(expr: &Expr) -> bool {
    match expr {
        Expr::Unary(u) => matches!(u.op, syn::UnOp::Neg(_)),
        Expr::Lit(ExprLit { lit: Lit::Int(i), .. }) => i.base10_digits().starts_with('-'),
        Expr::Lit(ExprLit { lit: Lit::Float(f), .. }) => f.base10_digits().starts_with('-'),
        _ => false,
    }
}

/// A duration: a string in the syntax of [`duration::parse`], or a number of seconds.
pub(crate) fn duration(expr: &Expr, name: Symbol, errors: &mut Errors) -> Option<Duration> {
    if is_negative(expr) {
        errors.add_spanned(expr, format!("`{name}` cannot be negative"));
        return None;
    }
    let parsed = match expr {
        Expr::Lit(ExprLit { lit: Lit::Str(s), .. }) => duration::parse(&s.value()),
        Expr::Lit(ExprLit { lit: Lit::Int(i), .. }) => duration::parse(i.base10_digits()),
        Expr::Lit(ExprLit { lit: Lit::Float(f), .. }) => duration::parse(f.base10_digits()),
        _ => Err(format!("`{name}` must be a duration such as \"30s\", \"1.5s\", \"2m\", or a number of seconds")),
    };
    parsed.map_err(|msg| errors.add_spanned(expr, msg)).ok()
}

/// A whole number from 0 to `u32::MAX`.
pub(crate) fn count(expr: &Expr, name: Symbol, errors: &mut Errors) -> Option<u32> {
    if is_negative(expr) {
        errors.add_spanned(expr, format!("`{name}` cannot be negative"));
        return None;
    }
    match expr {
        Expr::Lit(ExprLit { lit: Lit::Int(i), .. }) => match i.base10_parse::<u32>() {
            Ok(n) => Some(n),
            Err(_) => {
                errors.add(i.span(), format!("`{name}` must be a whole number from 0 to {}", u32::MAX));
                None
            }
        },
        other => {
            errors.add_spanned(other, format!("`{name}` must be a whole number"));
            None
        }
    }
}

/// A finite number above zero.
pub(crate) fn positive_number(expr: &Expr, name: Symbol, errors: &mut Errors) -> Option<f64> {
    let value = match expr {
        Expr::Lit(ExprLit { lit: Lit::Int(i), .. }) => i.base10_parse::<f64>().ok(),
        Expr::Lit(ExprLit { lit: Lit::Float(f), .. }) => f.base10_parse::<f64>().ok(),
        _ => None,
    };
    match value {
        Some(v) if v.is_finite() && v > 0.0 => Some(v),
        _ => {
            errors.add_spanned(expr, format!("`{name}` must be a positive number"));
            None
        }
    }
}

/// The path of a function (`fallback = my_fallback`).
pub(crate) fn function_path(expr: &Expr, name: Symbol, errors: &mut Errors) -> Option<syn::Path> {
    match expr {
        Expr::Path(p) if p.qself.is_none() => Some(p.path.clone()),
        other => {
            errors.add_spanned(
                other,
                format!("`{name}` must name a function taking the task's arguments (`{name} = my_{name}`)"),
            );
            None
        }
    }
}

/// `"file"`: the name of an output storage; `"inline"` means the default (in the log).
pub(crate) fn storage(expr: &Expr, name: Symbol, errors: &mut Errors) -> Option<String> {
    let lit = string(expr, name, errors)?;
    match lit.value().as_str() {
        "" => {
            errors.add(lit.span(), format!("`{name}` must name an output storage (`\"file\"`) or be `\"inline\"`"));
            None
        }
        "inline" => None,
        storage => Some(storage.to_string()),
    }
}

/// `["A", "B"]`: non-empty, distinct secret names (those that are, when some are not).
pub(crate) fn secret_names(expr: &Expr, name: Symbol, errors: &mut Errors) -> Vec<String> {
    let Expr::Array(array) = expr else {
        errors.add_spanned(expr, format!("`{name}` must be a list of secret names (`{name} = [\"API_KEY\"]`)"));
        return Vec::new();
    };
    let mut names: Vec<String> = Vec::new();
    for element in &array.elems {
        match element {
            Expr::Lit(ExprLit { lit: Lit::Str(s), .. }) => {
                let secret = s.value();
                if secret.is_empty() || secret.chars().any(char::is_control) {
                    errors.add(s.span(), "a secret name must be a non-empty string of printable characters");
                } else if names.contains(&secret) {
                    errors.add(s.span(), format!("secret `{secret}` is requested twice"));
                } else {
                    names.push(secret);
                }
            }
            other => errors.add_spanned(other, "a secret name must be a string literal"),
        }
    }
    names
}
