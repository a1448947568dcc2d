//! Markdown made by Qiao itself (e.g. a cohort definition's narrative) as HTML for a page.
//!
//! The text may carry words users wrote (rule and concept set names): raw HTML in it is shown as
//! text, never interpreted, so a definition cannot inject markup into a page.

use maud::PreEscaped;
use pulldown_cmark::{html, Event, Options, Parser};

/// `md` (CommonMark with tables) as HTML, with any raw HTML escaped into text.
pub fn markdown(md: &str) -> PreEscaped<String> {
    let parser = Parser::new_ext(md, Options::ENABLE_TABLES).map(|e| match e {
        Event::Html(s) | Event::InlineHtml(s) => Event::Text(s),
        e => e,
    });
    let mut out = String::with_capacity(md.len() * 3 / 2);
    html::push_html(&mut out, parser);
    PreEscaped(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_render_and_raw_html_is_text() {
        let h =
            markdown("# T\n\n| a | b |\n|---|---|\n| 1 | <script>x</script> |\n\n<b>hi</b>\n").0;
        assert!(h.contains("<h1>T</h1>"), "{h}");
        assert!(h.contains("<table>"), "{h}");
        assert!(!h.contains("<script>"), "{h}");
        assert!(h.contains("&lt;script&gt;"), "{h}");
        assert!(!h.contains("<b>"), "{h}");
    }
}
