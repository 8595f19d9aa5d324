"""Word lists of the synthetic Shop catalogue (our own words; nothing is copied from WebShop).

Each product type has a 3-level category path (WebShop's ``product_category``), the search
term it was "listed under" (WebShop's ``query``), the nouns of its name (what WebShop gets
from spaCy for its type reward) and its option dimensions. Option values within a dimension
are chosen so that no two of them fuzzy-match (token-set ratio <= 85, checked by a test): a
wrong option must really be wrong.
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["ProductType", "PRODUCT_TYPES", "ATTRIBUTES", "OPTION_VALUES", "COLORS", "SYLLABLES"]

COLORS: tuple[str, ...] = (
    "black", "white", "navy", "crimson", "green", "grey", "beige", "pink",
    "teal", "brown", "purple", "yellow", "orange", "olive", "burgundy", "ivory",
)  # fmt: skip
"""Base colours (no colour is a substring of another, so normalisation is the identity)."""

OPTION_VALUES: Mapping[str, tuple[str, ...]] = {
    "color": COLORS,
    "size": ("xs", "s", "m", "l", "xl", "xxl"),
    "shoe size": ("6", "7", "8", "9", "10", "11", "12"),
    "volume": ("30ml", "75ml", "200ml", "500ml"),
    "scent": ("unscented", "lavender", "citrus", "rose", "coconut", "eucalyptus"),
    "pan size": ("8in", "10in", "12in"),
    "pack": ("single", "twin pack", "family pack", "bulk case"),
    "bed size": ("twin", "full", "queen", "king"),
    "style": ("zephyr", "nova", "orion", "lyra", "vega"),
    "flavor": ("original", "mint", "vanilla", "chocolate", "berry", "lemon", "ginger", "honey"),
    "thickness": ("4mm", "6mm", "8mm", "10mm"),
    "capacity": ("12oz", "18oz", "24oz", "32oz", "40oz"),
    "weight": ("10lb", "20lb", "30lb", "40lb", "50lb"),
}
"""Every option dimension and its values, in display order."""

ATTRIBUTES: Mapping[str, tuple[str, ...]] = {
    "Clothing": (
        "machine wash", "cotton blend", "quick dry", "relaxed fit", "slim fit", "long sleeve",
        "short sleeve", "wrinkle free", "moisture wicking", "button closure", "elastic waist",
        "hand wash only", "recycled polyester", "fleece lined", "breathable mesh", "lightweight",
    ),
    "Beauty": (
        "paraben free", "cruelty free", "long lasting", "fragrance free", "vegan formula",
        "sensitive skin", "travel size", "natural ingredients", "oil free", "hyaluronic acid",
        "sulfate free", "dermatologist tested",
    ),
    "Home": (
        "dishwasher safe", "bpa free", "non stick", "easy clean", "stainless steel",
        "space saving", "heat resistant", "oven safe", "microfiber", "deep pocket",
        "energy efficient", "dimmable", "wall mounted", "eco friendly",
    ),
    "Electronics": (
        "noise cancelling", "fast charging", "bluetooth", "long battery life",
        "shockproof", "usb c", "wireless charging", "high definition", "plug and play",
        "backlit keys", "compact design", "water resistant",
    ),
    "Grocery": (
        "gluten free", "sugar free", "non gmo", "low calorie", "keto friendly",
        "high protein", "individually wrapped", "caffeine free", "organic", "kosher",
        "plant based", "ready to eat",
    ),
    "Sports": (
        "non slip", "insulated", "leak proof", "easy grip", "durable", "foldable",
        "sweat proof", "rust proof", "ultralight", "textured surface", "carry strap",
    ),
}  # fmt: skip
"""Attribute phrases by top-level category."""


class ProductType(tuple):
    """A product type: ``(category path, type phrase, nouns, option dimensions, price range)``.

    A plain tuple subclass so the word lists stay literal data.
    """

    __slots__ = ()

    @property
    def category(self) -> str:
        """The ``A › B › C`` category path."""
        return self[0]

    @property
    def name(self) -> str:
        """The type phrase (also the search term the product is listed under)."""
        return self[1]

    @property
    def nouns(self) -> tuple[str, ...]:
        """The nouns of the type phrase (WebShop's spaCy nouns)."""
        return self[2]

    @property
    def options(self) -> tuple[str, ...]:
        """Option dimensions of products of this type."""
        return self[3]

    @property
    def price_range(self) -> tuple[float, float]:
        """Lowest and highest list price."""
        return self[4]


def _t(category: str, name: str, nouns: str, options: str, low: float, high: float) -> ProductType:
    dims = tuple(o.strip() for o in options.split(",") if o.strip())
    return ProductType((category, name, tuple(nouns.split()), dims, (low, high)))


PRODUCT_TYPES: tuple[ProductType, ...] = (
    _t("Clothing › Men › Shirts", "dress shirt", "shirt", "color, size", 15, 70),
    _t("Clothing › Men › Shoes", "running shoes", "shoes", "color, shoe size", 30, 140),
    _t("Clothing › Women › Dresses", "maxi dress", "dress", "color, size", 20, 90),
    _t("Clothing › Women › Jackets", "rain jacket", "jacket", "color, size", 35, 160),
    _t("Clothing › Kids › Sleepwear", "pajama set", "pajama set", "color, size", 12, 45),
    _t("Clothing › Women › Activewear", "yoga leggings", "leggings", "color, size", 15, 60),
    _t("Beauty › Skin Care › Moisturizers", "face moisturizer", "moisturizer",
       "volume, scent", 8, 60),
    _t("Beauty › Hair Care › Shampoo", "clarifying shampoo", "shampoo", "volume, scent", 6, 35),
    _t("Beauty › Makeup › Lips", "matte lipstick", "lipstick", "color", 5, 30),
    _t("Beauty › Bath › Soap", "bar soap", "bar soap", "scent, pack", 4, 25),
    _t("Home › Kitchen › Cookware", "frying pan", "pan", "pan size, color", 18, 90),
    _t("Home › Kitchen › Storage", "food container set", "food container set", "pack", 10, 45),
    _t("Home › Bedding › Sheets", "sheet set", "sheet set", "bed size, color", 20, 120),
    _t("Home › Decor › Lighting", "table lamp", "lamp", "color, style", 18, 110),
    _t("Home › Bath › Towels", "bath towel", "towel", "color, pack", 9, 50),
    _t("Electronics › Audio › Headphones", "wireless headphones", "headphones", "color",
       20, 250),
    _t("Electronics › Accessories › Chargers", "wall charger", "charger", "pack", 8, 45),
    _t("Electronics › Accessories › Cases", "phone case", "phone case", "color, style", 6, 40),
    _t("Electronics › Computers › Keyboards", "mechanical keyboard", "keyboard",
       "color, style", 30, 180),
    _t("Electronics › Audio › Speakers", "portable speaker", "speaker", "color", 18, 200),
    _t("Grocery › Snacks › Bars", "protein bar", "protein bar", "flavor, pack", 8, 40),
    _t("Grocery › Beverages › Tea", "herbal tea", "tea", "flavor, pack", 4, 30),
    _t("Grocery › Pantry › Sauces", "hot sauce", "sauce", "flavor, pack", 4, 25),
    _t("Grocery › Snacks › Nuts", "trail mix", "trail mix", "flavor, pack", 5, 35),
    _t("Sports › Fitness › Mats", "yoga mat", "mat", "color, thickness", 12, 80),
    _t("Sports › Outdoor › Bottles", "water bottle", "bottle", "color, capacity", 8, 45),
    _t("Sports › Fitness › Weights", "adjustable dumbbell", "dumbbell", "weight", 25, 300),
    _t("Sports › Outdoor › Camping", "camping hammock", "hammock", "color", 18, 90),
)  # fmt: skip
"""Every product type; the first word of the category path picks the attribute list."""

SYLLABLES: tuple[str, ...] = (
    "zor", "vex", "lu", "mira", "tek", "bran", "nol", "qua", "fen", "dax", "ori", "sel",
    "kai", "vo", "rin", "tal", "mox", "pell", "ura", "zen", "cor", "lin", "bex", "ano",
)  # fmt: skip
"""Syllables for invented brand names."""
