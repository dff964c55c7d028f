//! Reading the SVG reports the bridge and the demo draw, as a test checks them: the document
//! must parse as XML with an `<svg>` root, and what a reader sees of it is its text elements.

/// `svg` parsed; panics naming `what` if it is not well-formed XML with an `<svg>` root.
pub fn parse<'a>(svg: &'a str, what: &str) -> roxmltree::Document<'a> {
    let doc = roxmltree::Document::parse(svg)
        .unwrap_or_else(|e| panic!("{what} is not well-formed XML: {e}"));
    assert_eq!(
        doc.root_element().tag_name().name(),
        "svg",
        "{what}'s root element"
    );
    doc
}

/// The trimmed contents of every `<text>` element of `doc`, in document order.
pub fn texts(doc: &roxmltree::Document<'_>) -> Vec<String> {
    doc.descendants()
        .filter(|n| n.has_tag_name("text"))
        .filter_map(|n| n.text().map(|t| t.trim().to_string()))
        .collect()
}
