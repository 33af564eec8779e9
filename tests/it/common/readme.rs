//! The README's tables, found with a Markdown parser: each cell as the Markdown it is
//! written in (backticks kept), so that a test compares it with the text the code holds.

use pulldown_cmark::{Event, Options, Parser, Tag};

/// The README.
pub fn readme() -> String {
    std::fs::read_to_string(super::dashboards::root().join("README.md")).unwrap()
}

/// The body rows of the README tables whose header row is `header` (a long table may be
/// split under several headings), in order.
pub fn table(header: &[&str]) -> Vec<Vec<String>> {
    let text = readme();
    let mut tables: Vec<Vec<Vec<String>>> = Vec::new();
    for (event, range) in Parser::new_ext(&text, Options::ENABLE_TABLES).into_offset_iter() {
        match event {
            Event::Start(Tag::Table(_)) => tables.push(Vec::new()),
            Event::Start(Tag::TableHead | Tag::TableRow) => {
                tables
                    .last_mut()
                    .expect("a row inside a table")
                    .push(Vec::new());
            }
            Event::Start(Tag::TableCell) => {
                let cell = text[range].trim().trim_matches('|').trim().to_string();
                let table = tables.last_mut().expect("a cell inside a table");
                table.last_mut().expect("a cell inside a row").push(cell);
            }
            _ => {}
        }
    }
    let rows: Vec<Vec<String>> = tables
        .into_iter()
        .filter(|t| {
            t.first()
                .is_some_and(|head| head.iter().map(String::as_str).eq(header.iter().copied()))
        })
        .flat_map(|t| t.into_iter().skip(1))
        .collect();
    assert!(!rows.is_empty(), "README has a table {header:?}");
    rows
}
