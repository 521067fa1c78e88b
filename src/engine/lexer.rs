//! The leading keywords of a statement, read the same way everywhere: blanks and comments
//! (`-- …` to the end of the line, `/* … */`) are skipped before and between them, as SQLite
//! skips them. The engine decides a few things from these words before SQLite compiles anything
//! (is it a plain query, does it open a transaction, is it a whole `ROLLBACK`); reading them in
//! one place keeps a comment in front of a statement from changing the answer.

/// `sql` without its leading blanks and comments.
pub fn skip_blanks(sql: &str) -> &str {
  let mut rest = sql;
  loop {
    rest = rest.trim_start();
    if let Some(after) = rest.strip_prefix("--") {
      rest = after.split_once('\n').map_or("", |(_, tail)| tail);
    } else if let Some(after) = rest.strip_prefix("/*") {
      rest = after.split_once("*/").map_or("", |(_, tail)| tail);
    } else {
      return rest;
    }
  }
}

/// The keyword at the start of `sql` (letters only; empty when it starts with something else).
pub fn first_word(sql: &str) -> &str {
  let rest = skip_blanks(sql);
  let end = rest
    .find(|c: char| !c.is_ascii_alphabetic())
    .unwrap_or(rest.len());
  &rest[..end]
}

/// The keywords at the start of `sql`, and what follows them.
pub fn leading_words(sql: &str) -> (Vec<&str>, &str) {
  let mut words = Vec::new();
  let mut rest = sql;
  loop {
    let word = first_word(rest);
    if word.is_empty() {
      return (words, skip_blanks(rest));
    }
    let start = skip_blanks(rest);
    rest = &start[word.len()..];
    words.push(word);
  }
}

#[cfg(test)]
mod tests {
  use super::*;

  #[test]
  fn comments_and_blanks_are_skipped_before_and_between_words() {
    assert_eq!(first_word("  -- note\n /* a */ select 1"), "select");
    assert_eq!(first_word("(SELECT 1)"), "");
    let (words, rest) = leading_words("ROLLBACK /* all */ TRANSACTION ; -- done");
    assert_eq!(words, ["ROLLBACK", "TRANSACTION"]);
    assert_eq!(rest, "; -- done");
  }
}
