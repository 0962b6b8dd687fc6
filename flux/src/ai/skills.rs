//! Skills: instructions an agent reads when it needs them, from `SKILL.md` files.

use std::path::Path;
use std::sync::Arc;

use serde_json::Value;

use super::tool::Tool;
use crate::error::{Error, ErrorKind, Result};

/// One skill: a name, what it is for, and the instructions the model reads when it uses it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Skill {
    /// Its name (what `use_skill` is called with).
    pub name: String,
    /// When to use it, shown in the catalog.
    pub description: String,
    /// The instructions.
    pub body: String,
}

impl Skill {
    /// A skill.
    pub fn new(name: impl Into<String>, description: impl Into<String>, body: impl Into<String>) -> Skill {
        Skill { name: name.into(), description: description.into(), body: body.into() }
    }

    /// Reads a `SKILL.md` text: an optional front matter (`---`, `name: ..`, `description: ..`,
    /// `---`) then the instructions. Without a name in it, the skill is called `default_name`.
    pub fn parse(default_name: &str, text: &str) -> Skill {
        let (mut name, mut description, mut body) = (default_name.to_string(), String::new(), text);
        if let Some(rest) = text.strip_prefix("---")
            && let Some((front, after)) = rest.split_once("\n---")
        {
            for line in front.lines() {
                if let Some((key, value)) = line.split_once(':') {
                    let value = value.trim().trim_matches('"').to_string();
                    match key.trim() {
                        "name" if !value.is_empty() => name = value,
                        "description" => description = value,
                        _ => {}
                    }
                }
            }
            body = after;
        }
        Skill { name, description, body: body.trim().to_string() }
    }
}

/// A catalog of skills offered to a model: `agent(..).skills(Skills::from_dir("skills")?)`.
/// The catalog (names and descriptions) goes into the system prompt; the tool `use_skill`
/// (recorded as a task like any tool) gives the model one skill's instructions.
#[derive(Clone, Debug, Default)]
pub struct Skills {
    skills: Arc<[Skill]>,
}

impl Skills {
    /// These skills.
    ///
    /// ```
    /// use flux::ai::{Skill, Skills};
    /// let skills = Skills::new([Skill::parse("tone", "---\nname: tone\ndescription: House style\n---\nBe brief.")]);
    /// assert_eq!(skills.get("tone").map(|s| s.body.as_str()), Some("Be brief."));
    /// ```
    pub fn new(skills: impl IntoIterator<Item = Skill>) -> Skills {
        Skills { skills: skills.into_iter().collect() }
    }

    /// The skills of a directory: each `<dir>/<name>/SKILL.md` (and each `<dir>/<name>.md`),
    /// in name order. A directory that cannot be read is an error naming it.
    pub fn from_dir(dir: impl AsRef<Path>) -> Result<Skills> {
        let dir = dir.as_ref();
        let unreadable = |e: std::io::Error, path: &Path| {
            Error::new(ErrorKind::Config, format!("the skills at `{}` cannot be read: {e}", path.display()))
        };
        let mut skills = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(|e| unreadable(e, dir))? {
            let path = entry.map_err(|e| unreadable(e, dir))?.path();
            let Some(stem) = path.file_stem().and_then(|s| s.to_str()).map(str::to_string) else { continue };
            let file = if path.is_dir() {
                path.join("SKILL.md")
            } else if path.extension().is_some_and(|e| e == "md") {
                path.clone()
            } else {
                continue;
            };
            if !file.is_file() {
                continue;
            }
            let text = std::fs::read_to_string(&file).map_err(|e| unreadable(e, &file))?;
            skills.push(Skill::parse(&stem, &text));
        }
        skills.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(Skills::new(skills))
    }

    /// The skill named `name`.
    pub fn get(&self, name: &str) -> Option<&Skill> {
        self.skills.iter().find(|s| s.name == name)
    }

    /// The skills, in order.
    pub fn iter(&self) -> impl Iterator<Item = &Skill> {
        self.skills.iter()
    }

    /// The catalog added to the system prompt.
    pub(crate) fn catalog(&self) -> String {
        let mut text = String::from("\n\nSkills you can use (call `use_skill` with a name to read its instructions):");
        for skill in self.skills.iter() {
            text.push_str(&format!("\n- {}: {}", skill.name, skill.description));
        }
        text
    }

    /// The tool `use_skill`.
    pub(crate) fn tool(&self) -> Tool {
        let skills = self.clone();
        let names: Vec<Value> = self.skills.iter().map(|s| Value::String(s.name.clone())).collect();
        let parameters = serde_json::json!({
            "type": "object",
            "properties": {"name": {"type": "string", "enum": names, "description": "The skill's name."}},
            "required": ["name"],
        });
        Tool::from_fn("use_skill", "Reads the instructions of a skill.", parameters, move |args: Value| {
            let skills = skills.clone();
            async move {
                let name = args.get("name").and_then(Value::as_str).unwrap_or_default();
                Ok(match skills.get(name) {
                    Some(skill) => Value::String(skill.body.clone()),
                    None => Value::String(format!("Error: there is no skill `{name}`")),
                })
            }
        })
        .read_only(true)
    }
}
