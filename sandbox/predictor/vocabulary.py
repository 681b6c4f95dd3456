"""The words, names and colors the sandbox's made-up values are drawn from."""

from __future__ import annotations

__all__ = [
    "BRANDS",
    "CITIES",
    "COMPANY_KINDS",
    "COMPANY_WORDS",
    "CURRENCIES",
    "DEGREES",
    "FIELDS_OF_STUDY",
    "FIRST_NAMES",
    "GROCERIES",
    "JOB_TITLES",
    "LAND_COVER",
    "LAST_NAMES",
    "NEWS_TOPICS",
    "PRODUCT_KINDS",
    "SERVICES",
    "SKILLS",
    "STREETS",
    "UNIVERSITIES",
    "WORDS",
    "color_name",
]

FIRST_NAMES = (
    "Ada", "Amara", "Ben", "Carlos", "Chen", "Dana", "Elena", "Farid", "Grace", "Hiro",
    "Ines", "Jonas", "Kemi", "Lena", "Mateo", "Nadia", "Omar", "Priya", "Ravi", "Sofia",
)  # fmt: skip
LAST_NAMES = (
    "Andersen", "Bauer", "Costa", "Dubois", "Evans", "Fischer", "Garcia", "Haddad", "Ito",
    "Jensen", "Kowalski", "Lopez", "Moreau", "Nakamura", "Okafor", "Patel", "Rossi", "Singh",
)  # fmt: skip
COMPANY_WORDS = (
    "Acme", "Blue Harbor", "Cedar", "Northwind", "Summit", "Pioneer", "Silverline",
    "Brightpath", "Ironwood", "Lakeside", "Redstone", "Evergreen", "Keystone", "Orbit",
)  # fmt: skip
COMPANY_KINDS = ("Supply Co.", "Labs", "Consulting", "Logistics", "Systems", "Traders", "GmbH")
STREETS = ("Main St", "Oak Ave", "Market St", "Elm Rd", "Harbor Blvd", "Mill Ln", "Park Way")
CITIES = (
    ("Springfield", "IL", "US"), ("Portland", "OR", "US"), ("Austin", "TX", "US"),
    ("Toronto", "ON", "CA"), ("Leeds", "WYK", "GB"), ("Lyon", "ARA", "FR"),
    ("Munich", "BY", "DE"), ("Denver", "CO", "US"),
)  # fmt: skip
SERVICES = (
    "Consulting services", "Software license", "Cloud hosting", "Support plan",
    "Hardware maintenance", "Design work", "Data migration", "Training session",
    "Shipping and handling", "Office supplies", "Network equipment", "Security audit",
)  # fmt: skip
GROCERIES = (
    "Coffee beans", "Whole milk", "Sourdough bread", "Bananas", "Eggs (12)", "Olive oil",
    "Cheddar", "Pasta", "Tomatoes", "Sparkling water", "Granola", "Chocolate bar",
)  # fmt: skip
WORDS = (
    "quarterly", "revenue", "forecast", "customer", "delivery", "schedule", "project",
    "review", "update", "account", "service", "summary", "total", "region", "growth",
    "report", "team", "market", "product", "support", "plan", "results", "budget", "order",
)  # fmt: skip
SKILLS = (
    "Python", "SQL", "Data analysis", "Project management", "Public speaking", "Docker",
    "Financial modeling", "UX research", "Kubernetes", "Technical writing", "Negotiation",
)  # fmt: skip
JOB_TITLES = ("Software Engineer", "Data Analyst", "Product Manager", "Accountant", "Designer")
DEGREES = ("B.Sc.", "B.A.", "M.Sc.", "MBA", "Ph.D.")
FIELDS_OF_STUDY = (
    "Computer Science", "Economics", "Mechanical Engineering", "Design", "Mathematics",
)  # fmt: skip
UNIVERSITIES = ("State University", "Institute of Technology", "City College", "Polytechnic")
CURRENCIES = ("USD", "EUR", "GBP", "CAD")
PRODUCT_KINDS = (
    ("Apparel", ("T-shirt", "Hoodie", "Sneakers", "Cap")),
    ("Home & Kitchen", ("Ceramic mug", "Water bottle", "Table lamp", "Throw pillow")),
    ("Electronics", ("Wireless earbuds", "Phone case", "USB-C charger", "Speaker")),
    ("Beauty", ("Face cream", "Shampoo bottle", "Perfume", "Lip balm")),
)
BRANDS = ("Lumen", "Northpeak", "Vela", "Kinto", "Oakline", "Mira", "Solace", "Tidewater")
NEWS_TOPICS = ("economy", "weather", "sports", "politics", "technology", "health", "culture")
_NAMED_COLORS: tuple[tuple[str, tuple[int, int, int]], ...] = (
    ("white", (255, 255, 255)), ("black", (0, 0, 0)), ("gray", (128, 128, 128)),
    ("silver", (192, 192, 192)), ("red", (220, 20, 60)), ("maroon", (128, 0, 0)),
    ("orange", (255, 140, 0)), ("yellow", (255, 215, 0)), ("olive", (128, 128, 0)),
    ("green", (34, 139, 34)), ("teal", (0, 128, 128)), ("sky blue", (135, 206, 235)),
    ("blue", (30, 90, 220)), ("navy", (0, 0, 128)), ("purple", (128, 0, 128)),
    ("pink", (255, 105, 180)), ("brown", (139, 69, 19)), ("beige", (222, 205, 170)),
)  # fmt: skip
LAND_COVER = {
    "water": ("blue", "navy", "teal", "sky blue"),
    "vegetation": ("green", "olive"),
    "built-up": ("gray", "silver", "black", "red", "maroon", "purple", "pink"),
    "bare soil": ("brown", "beige", "orange", "yellow"),
    "cloud or snow": ("white",),
}


def color_name(hex_color: str) -> str:
    """The nearest named color to ``#rrggbb``, so captions say "navy", not a hex code."""
    rgb = tuple(int(hex_color[i : i + 2], 16) for i in (1, 3, 5))
    return min(
        _NAMED_COLORS,
        key=lambda named: sum((a - b) ** 2 for a, b in zip(rgb, named[1], strict=True)),
    )[0]
