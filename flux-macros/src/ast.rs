//! Parsing: the attribute's options and the function, from tokens into a plain model of what
//! was written, spans included. Only what cannot be put into the model is reported here (an
//! option that is not `key = value`, unknown or given twice, an item that is not a function);
//! everything else is judged by `check`.

use proc_macro2::{Span, TokenStream};
use quote::quote;
use syn::parse::Parser;
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{Attribute, Expr, FnArg, GenericArgument, Ident, ItemFn, Meta, Pat, PathArguments, ReturnType, Token, Type};

use crate::errors::Errors;
use crate::symbol::{self, Symbol, TASK_OPTIONS, WORKFLOW_OPTIONS};

/// Which macro is at work: decides the options it knows and the wording of messages.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Macro {
    /// `#[flux::task]`.
    Task,
    /// `#[flux::workflow]`.
    Workflow,
}

impl Macro {
    /// What the macro makes, for messages: `task` or `workflow`.
    pub(crate) fn what(self) -> &'static str {
        match self {
            Macro::Task => "task",
            Macro::Workflow => "workflow",
        }
    }

    /// The options the macro knows.
    pub(crate) fn options(self) -> &'static [Symbol] {
        match self {
            Macro::Task => TASK_OPTIONS,
            Macro::Workflow => WORKFLOW_OPTIONS,
        }
    }
}

/// One option as written: `timeout = "30s"`.
pub(crate) struct AttrOption {
    /// The option the key names.
    pub(crate) name: Symbol,
    /// The key as written, for errors about the option as a whole.
    pub(crate) key: Ident,
    /// The value as written.
    pub(crate) value: Expr,
}

/// The options of an attribute, in the order written, each given at most once.
pub(crate) struct Options(Vec<AttrOption>);

impl Options {
    /// The option `name`, if it is given.
    pub(crate) fn get(&self, name: Symbol) -> Option<&AttrOption> {
        self.0.iter().find(|o| o.name == name)
    }

    /// Every option given, in the order written.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &AttrOption> {
        self.0.iter()
    }
}

/// One parameter of the function, as written.
pub(crate) struct Param {
    /// The whole parameter, for errors about all of it.
    pub(crate) written: FnArg,
    /// `binding: Type`; `None` for `self` in any of its forms (`&self`, `mut self: Box<Self>`).
    pub(crate) typed: Option<TypedParam>,
}

/// A parameter other than `self`: `binding: Type`.
pub(crate) struct TypedParam {
    /// Attributes on the parameter (`#[allow(unused)] key: String`).
    pub(crate) attrs: Vec<Attribute>,
    /// What the parameter binds.
    pub(crate) binding: Binding,
    /// The parameter's type.
    pub(crate) ty: Type,
}

/// What a typed parameter binds.
pub(crate) enum Binding {
    /// `name` or `mut name`.
    Name {
        /// The name.
        ident: Ident,
        /// Whether it is written `mut name`.
        mutable: bool,
    },
    /// `_`, at this span: a parameter without a name.
    Wild(Span),
    /// Any other pattern (`(a, b)`, `ref x`, `x @ 1`).
    Pattern(Box<Pat>),
}

/// What a task or workflow returns.
pub(crate) struct Output {
    /// The success type (`T` of `T` or `Result<T, E>`).
    pub(crate) ty: Type,
    /// Whether the function returns a `Result`.
    pub(crate) fallible: bool,
    /// The return type as written, for the body function.
    pub(crate) written: ReturnType,
}

/// An attribute and the function it is on, as written.
pub(crate) struct Input {
    /// The attribute's options.
    pub(crate) options: Options,
    /// The function, unchanged.
    pub(crate) item: ItemFn,
    /// The function's parameters, in order.
    pub(crate) params: Vec<Param>,
    /// What the function returns.
    pub(crate) output: Output,
}

impl Input {
    /// Parses the attribute's tokens `attr` and the item's tokens `item` for `which` macro.
    ///
    /// Options that cannot be put into the model are reported to `errors` and left out. An item
    /// that is not a function gives the only error returned, since nothing else can be judged.
    pub(crate) fn parse(which: Macro, attr: TokenStream, item: TokenStream, errors: &mut Errors) -> syn::Result<Input> {
        let options = parse_options(attr, which.options(), errors);
        let item: syn::Item = syn::parse2(item)?;
        let syn::Item::Fn(item) = item else {
            return Err(syn::Error::new_spanned(
                item_head(&item),
                format!(
                    "`#[flux::{}]` applies to functions: write it on an `async fn`{}",
                    which.what(),
                    if which == Macro::Task { " or a plain `fn`" } else { "" }
                ),
            ));
        };
        let params = item.sig.inputs.iter().map(parse_param).collect();
        let output = parse_output(&item.sig.output);
        Ok(Input { options, item, params, output })
    }
}

/// The `key = value` options of `attr`, each recognised among `known`.
fn parse_options(attr: TokenStream, known: &[Symbol], errors: &mut Errors) -> Options {
    let metas = match Punctuated::<Meta, Token![,]>::parse_terminated.parse2(attr) {
        Ok(m) => m,
        Err(e) => {
            errors.push(e);
            return Options(Vec::new());
        }
    };
    let mut options: Vec<AttrOption> = Vec::new();
    for meta in metas {
        let Meta::NameValue(nv) = meta else {
            errors.add_spanned(&meta, format!("expected `key = value`; options are: {}", symbol::list(known)));
            continue;
        };
        let Some(key) = nv.path.get_ident().cloned() else {
            errors.add_spanned(&nv.path, format!("unknown option; options are: {}", symbol::list(known)));
            continue;
        };
        let Some(&name) = known.iter().find(|s| key == **s) else {
            errors.add(key.span(), format!("unknown option `{key}`; options are: {}", symbol::list(known)));
            continue;
        };
        if options.iter().any(|o| o.name == name) {
            errors.add(key.span(), format!("option `{key}` is given twice"));
            continue;
        }
        options.push(AttrOption { name, key, value: nv.value });
    }
    Options(options)
}

/// One parameter, as written.
fn parse_param(arg: &FnArg) -> Param {
    let typed = match arg {
        FnArg::Receiver(_) => None,
        FnArg::Typed(pt) => {
            let binding = match &*pt.pat {
                Pat::Ident(pi) if pi.by_ref.is_none() && pi.subpat.is_none() => {
                    Binding::Name { ident: pi.ident.clone(), mutable: pi.mutability.is_some() }
                }
                Pat::Wild(w) => Binding::Wild(w.span()),
                other => Binding::Pattern(Box::new(other.clone())),
            };
            Some(TypedParam { attrs: pt.attrs.clone(), binding, ty: (*pt.ty).clone() })
        }
    };
    Param { written: arg.clone(), typed }
}

/// `T` and whether it is `Result<T, _>`, from a return type.
fn parse_output(ret: &ReturnType) -> Output {
    let written = ret.clone();
    match ret {
        ReturnType::Default => Output { ty: syn::parse_quote!(()), fallible: false, written },
        ReturnType::Type(_, ty) => {
            if let Type::Path(p) = &**ty
                && let Some(last) = p.path.segments.last()
                && last.ident == "Result"
                && let PathArguments::AngleBracketed(args) = &last.arguments
                && let Some(GenericArgument::Type(t)) = args.args.first()
            {
                return Output { ty: t.clone(), fallible: true, written };
            }
            Output { ty: (**ty).clone(), fallible: false, written }
        }
    }
}

/// The tokens naming an item (`struct Fetch`), for errors about the item as a whole.
fn item_head(item: &syn::Item) -> TokenStream {
    match item {
        syn::Item::Struct(i) => {
            let (k, n) = (&i.struct_token, &i.ident);
            quote!(#k #n)
        }
        syn::Item::Enum(i) => {
            let (k, n) = (&i.enum_token, &i.ident);
            quote!(#k #n)
        }
        syn::Item::Trait(i) => {
            let (k, n) = (&i.trait_token, &i.ident);
            quote!(#k #n)
        }
        syn::Item::Impl(i) => {
            let (k, t) = (&i.impl_token, &i.self_ty);
            quote!(#k #t)
        }
        other => quote!(#other),
    }
}
