//! Turning a whole new text into edits on word boundaries.
//!
//! A text is cut into tokens: maximal runs of whitespace and maximal runs of anything else
//! (words, with their punctuation). The old and new token sequences are diffed (Myers, by the
//! `similar` crate) and every difference becomes one splice that deletes whole old tokens and
//! inserts whole new ones. A word is therefore never edited letter by letter: changing one letter
//! replaces the word. That is what keeps concurrent edits from interleaving into words neither
//! partner wrote — two partners' splices of one word always touch the same characters, which
//! [`super::conflict`] then reports as a conflict instead of a silent mix.

use similar::{capture_diff_slices, Algorithm, DiffTag};

/// One replacement, in characters (Unicode scalar values) of the old text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WordSplice {
    /// Where, in characters from the start of the old text.
    pub pos: usize,
    /// How many characters of the old text to delete.
    pub delete: usize,
    /// What to insert there.
    pub insert: String,
}

/// The tokens of `text`: runs of whitespace and runs of non-whitespace, in order.
pub fn tokens(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut last: Option<bool> = None;
    for (i, c) in text.char_indices() {
        let space = c.is_whitespace();
        if last.is_some_and(|l| l != space) {
            out.push(&text[start..i]);
            start = i;
        }
        last = Some(space);
    }
    if start < text.len() {
        out.push(&text[start..]);
    }
    out
}

/// The splices that turn `old` into `new`, each on token boundaries, in increasing order of
/// position and meant to be applied from the last to the first (so positions stay valid).
pub fn diff(old: &str, new: &str) -> Vec<WordSplice> {
    let old_tokens = tokens(old);
    let new_tokens = tokens(new);
    // Character offset of each old token, plus the end.
    let mut offsets = Vec::with_capacity(old_tokens.len() + 1);
    let mut at = 0;
    for t in &old_tokens {
        offsets.push(at);
        at += t.chars().count();
    }
    offsets.push(at);
    let mut out: Vec<WordSplice> = Vec::new();
    for op in capture_diff_slices(Algorithm::Myers, &old_tokens, &new_tokens) {
        let (tag, old_range, new_range) = op.as_tag_tuple();
        if tag == DiffTag::Equal {
            continue;
        }
        let pos = offsets[old_range.start];
        let delete = offsets[old_range.end] - pos;
        let insert: String = new_tokens[new_range].concat();
        // Adjacent differences (a delete next to an insert) become one replacement.
        match out.last_mut() {
            Some(prev) if prev.pos + prev.delete == pos => {
                prev.delete += delete;
                prev.insert.push_str(&insert);
            }
            _ => out.push(WordSplice {
                pos,
                delete,
                insert,
            }),
        }
    }
    out
}

/// Applies splices from [`diff`] to `old` (for tests and checks): the result is `new`.
pub fn apply(old: &str, splices: &[WordSplice]) -> String {
    let mut chars: Vec<char> = old.chars().collect();
    for s in splices.iter().rev() {
        chars.splice(s.pos..s.pos + s.delete, s.insert.chars());
    }
    chars.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn tokens_alternate_words_and_spaces() {
        assert_eq!(
            tokens("We  will\ttalk."),
            ["We", "  ", "will", "\t", "talk."]
        );
        assert_eq!(tokens(""), Vec::<&str>::new());
        assert_eq!(tokens(" é "), [" ", "é", " "]);
    }

    #[test]
    fn one_changed_letter_replaces_the_whole_word() {
        let splices = diff("every Sunday evening", "every Sundays evening");
        assert_eq!(
            splices,
            [WordSplice {
                pos: 6,
                delete: 6,
                insert: "Sundays".into()
            }]
        );
    }

    proptest! {
        #[test]
        fn diff_then_apply_gives_the_new_text(
            old in "[a-cé .\n]{0,40}",
            new in "[a-cé .\n]{0,40}",
        ) {
            let splices = diff(&old, &new);
            prop_assert_eq!(apply(&old, &splices), new.clone());
            let old_tokens = tokens(&old);
            for s in &splices {
                // Every splice starts and ends on token boundaries of the old text.
                let mut at = 0;
                let mut bounds = vec![0];
                for t in &old_tokens {
                    at += t.chars().count();
                    bounds.push(at);
                }
                prop_assert!(bounds.contains(&s.pos));
                prop_assert!(bounds.contains(&(s.pos + s.delete)));
            }
        }
    }
}
