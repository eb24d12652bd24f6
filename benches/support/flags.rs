//! Command-line flags as the benches take them: `--name value` or `--name=value`, numbers
//! with optional `_` separators. Shared by benches/pipeline.rs and benches/rebuild.rs through
//! `#[path]`.

pub struct Flags<I> {
    it: I,
}

impl<I: Iterator<Item = String>> Flags<I> {
    pub fn new(args: impl IntoIterator<Item = String, IntoIter = I>) -> Self {
        Flags {
            it: args.into_iter(),
        }
    }

    /// The next flag's name, with its value when written `--name=value`.
    pub fn next_flag(&mut self) -> Option<(String, Option<String>)> {
        let arg = self.it.next()?;
        Some(match arg.split_once('=') {
            Some((n, v)) => (n.to_owned(), Some(v.to_owned())),
            None => (arg, None),
        })
    }

    /// The value of flag `name`: written inline, else the next argument.
    pub fn value(&mut self, name: &str, inline: Option<String>) -> Result<String, String> {
        inline
            .or_else(|| self.it.next())
            .ok_or_else(|| format!("{name} needs a value"))
    }
}

pub fn num<T: std::str::FromStr>(name: &str, v: &str) -> Result<T, String> {
    v.replace('_', "")
        .parse()
        .map_err(|_| format!("{name}: {v:?} is not a number"))
}
