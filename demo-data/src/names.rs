//! Word lists the generator draws from.

pub(crate) const FIRST: &[&str] = &[
    "Ada", "Bram", "Cora", "Dario", "Edith", "Felix", "Greta", "Hugo", "Ines", "Jonas", "Kira",
    "Lars", "Maren", "Nico", "Olga", "Pavel", "Quinn", "Rosa", "Silas", "Tilda", "Umar", "Vera",
    "Wim", "Xenia", "Yusuf", "Zelda",
];

pub(crate) const LAST: &[&str] = &[
    "Abbott",
    "Berg",
    "Castillo",
    "Duarte",
    "Eklund",
    "Fournier",
    "Garnett",
    "Hale",
    "Ivers",
    "Jansen",
    "Kowal",
    "Lindqvist",
    "Moreau",
    "Nakamura",
    "Okafor",
    "Pryce",
    "Quarles",
    "Rinaldi",
    "Sato",
    "Thorne",
    "Ueda",
    "Varga",
    "Whitlock",
    "Yilmaz",
    "Zamora",
];

pub(crate) const DOMAINS: &[&str] = &[
    "example.org",
    "example.com",
    "example.net",
    "mail.example",
    "library.example",
];

/// Title, author, year published, genre, number of copies (35 in all).
pub(crate) const BOOKS: &[(&str, &str, i32, &str, usize)] = &[
    ("Pride and Prejudice", "Jane Austen", 1813, "fiction", 3),
    ("Moby-Dick", "Herman Melville", 1851, "fiction", 5),
    (
        "The Origin of Species",
        "Charles Darwin",
        1859,
        "science",
        4,
    ),
    (
        "Alice's Adventures in Wonderland",
        "Lewis Carroll",
        1865,
        "fiction",
        3,
    ),
    (
        "The Adventures of Tom Sawyer",
        "Mark Twain",
        1876,
        "fiction",
        4,
    ),
    (
        "The Interpretation of Dreams",
        "Sigmund Freud",
        1899,
        "psychology",
        3,
    ),
    (
        "The Time Machine",
        "H. G. Wells",
        1895,
        "science fiction",
        4,
    ),
    ("Meditations", "Marcus Aurelius", 180, "philosophy", 3),
    ("The Art of War", "Sun Tzu", -500, "history", 3),
    ("Frankenstein", "Mary Shelley", 1818, "fiction", 3),
];
