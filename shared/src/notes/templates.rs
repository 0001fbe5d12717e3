//! Starter structures for `candor note new NAME --template …`, written for two partners
//! rebuilding trust: needs as I-statements, boundaries with what each agreed, agreements with a
//! review date, and a sheet to fill in before a hard conversation.

/// Names of the templates, as `--template` takes them.
pub const NAMES: [&str; 4] = ["needs", "boundaries", "agreements", "conversation-prep"];

/// The starter text of a template, by name.
pub fn template(name: &str) -> Option<&'static str> {
    match name {
        "needs" => Some(NEEDS),
        "boundaries" => Some(BOUNDARIES),
        "agreements" => Some(AGREEMENTS),
        "conversation-prep" => Some(CONVERSATION_PREP),
        _ => None,
    }
}

const NEEDS: &str = "\
# Our needs

Each of us writes our own needs here, in our own words, before we talk about them.
Say what you feel and what would help, not what the other person did wrong:
\"I feel … when … it would help me if …\".
One need per line is enough. Either of us can add; nobody edits the other's lines.

## My needs (first partner)

- I feel … when … it would help me if …
- I feel … when … it would help me if …

## My needs (second partner)

- I feel … when … it would help me if …
- I feel … when … it would help me if …

## Needs we share

- 

## What we will each try this week (one or two, realistic)

- 
";

const BOUNDARIES: &str = "\
# Our boundaries

A boundary says what I will do to look after myself; it is not a rule for the other person.
Write each one, then what your partner said about it, so neither of us has to remember.

## Boundary
- Whose: 
- In my words: \"When …, I will …\"
- Why it matters to me: 
- What my partner agreed to: 
- What we did not agree on yet: 
- Date written: 

## Boundary
- Whose: 
- In my words: \"When …, I will …\"
- Why it matters to me: 
- What my partner agreed to: 
- What we did not agree on yet: 
- Date written: 

Revisit these together; a boundary can change, but only by talking about it.
";

const AGREEMENTS: &str = "\
# Our agreements

What we both said yes to, in plain words, with a date to look at it again.
(For an agreement the other partner formally accepts, use `candor agreement propose`.)

## Agreement
- What we agreed: 
- Why we want it: 
- What each of us will do: 
  - first partner: 
  - second partner: 
- If it is not kept, we will: 
- Review on: 

## Agreement
- What we agreed: 
- Why we want it: 
- What each of us will do: 
  - first partner: 
  - second partner: 
- If it is not kept, we will: 
- Review on: 
";

const CONVERSATION_PREP: &str = "\
# Before a hard conversation

Fill this in on your own before we talk. It is not a script; it helps us say what matters
and listen to the answer.

## The topic, in one sentence
- 

## What I feel about it
- I feel … when … 

## What I need from this conversation
- It would help me if … 

## What I want to understand about my partner's side
- 

## What I am willing to offer or change
- 

## What I will avoid saying (blame, \"always\", \"never\", old fights)
- 

## When and where (a calm time, enough time, no audience)
- 

## If it gets too heated, our pause signal is
- … and we come back to it on: 
";
