"""The demo network's people and places: fixed for five boroughs, generated past them.

Pure data and a deterministic generator, no I/O, so the seeding steps and the
tests can both read it.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

SEED = "nycmg-demo-1"


# ---- what the network is made of -------------------------------------------


@dataclass(frozen=True)
class ArtistSpec:
    handle: str
    name: str
    kind: str  # Person or Group
    genres: tuple[str, ...]
    neighbourhood: str
    bio: str


@dataclass(frozen=True)
class VenueSpec:
    name: str
    address: str
    lat: float
    lon: float
    capacity: int


@dataclass(frozen=True)
class NodeSpec:
    key: str  # directory name
    borough: str
    name: str
    description: str
    artists: tuple[ArtistSpec, ...]
    venues: tuple[VenueSpec, ...]


def _a(handle: str, name: str, kind: str, genres: str, hood: str, bio: str) -> ArtistSpec:
    return ArtistSpec(handle, name, kind, tuple(genres.split(", ")), hood, bio)


SPECS: tuple[NodeSpec, ...] = (
    NodeSpec(
        "brooklyn",
        "Brooklyn",
        "Brooklyn Sound Collective",
        "Artist-run since the warehouse days: indie, afrobeat and tape culture from the docks to Flatbush.",
        (
            _a(
                "mira_vale",
                "Mira Vale",
                "Person",
                "indie folk, dream pop",
                "Greenpoint",
                "Writes songs on a borrowed harmonium above a Polish bakery.",
            ),
            _a(
                "the_ferrymen",
                "The Ferrymen",
                "Group",
                "post-punk, garage rock",
                "Red Hook",
                "Four dock workers' kids with two chords and a van that mostly starts.",
            ),
            _a(
                "kofi_ade",
                "Kofi Adé",
                "Person",
                "afrobeat, jazz",
                "Flatbush",
                "Saxophonist and bandleader; Sunday sessions on Nostrand Avenue since 2016.",
            ),
            _a(
                "bushwick_tape_club",
                "Bushwick Tape Club",
                "Group",
                "lo-fi hip hop, beat tape",
                "Bushwick",
                "A cassette label and a beat crew that trade tapes at the laundromat.",
            ),
        ),
        (
            VenueSpec(
                "Kent Avenue Boiler Room", "95 Kent Ave, Brooklyn, NY 11249", 40.7214, -73.9623, 350
            ),
            VenueSpec(
                "The Stoop on Nostrand",
                "1172 Nostrand Ave, Brooklyn, NY 11225",
                40.6590,
                -73.9503,
                120,
            ),
            VenueSpec(
                "Gowanus Canal Works", "543 Union St, Brooklyn, NY 11215", 40.6794, -73.9870, 500
            ),
        ),
    ),
    NodeSpec(
        "queens",
        "Queens",
        "Queens Night Radio Collective",
        "The most languages per block of any scene on earth: hip hop, cumbia, ambient and brass.",
        (
            _a(
                "jay",
                "Jay Sunnyside",
                "Person",
                "hip hop, boom bap",
                "Sunnyside",
                "Raps about the 7 train, his grandmother's kitchen and the Mets, in that order.",
            ),
            _a(
                "luz_y_fuerza",
                "Luz y Fuerza",
                "Group",
                "cumbia, psychedelic",
                "Jackson Heights",
                "Psychedelic cumbia under the elevated tracks on Roosevelt Avenue.",
            ),
            _a(
                "min_park",
                "Min Park",
                "Person",
                "ambient, electronic",
                "Flushing",
                "Field recordings from Main Street folded into slow synthesizer pieces.",
            ),
            _a(
                "astoria_brass",
                "Astoria Brass Society",
                "Group",
                "brass band, funk",
                "Astoria",
                "Eleven horns, one sousaphone, every street fair from Ditmars to Broadway.",
            ),
        ),
        (
            VenueSpec(
                "Steinway Street Social",
                "31-01 Steinway St, Astoria, NY 11103",
                40.7607,
                -73.9181,
                200,
            ),
            VenueSpec(
                "Roosevelt Ave Listening Room",
                "82-11 Roosevelt Ave, Jackson Heights, NY 11372",
                40.7470,
                -73.8842,
                90,
            ),
            VenueSpec(
                "Main Street Basement", "41-28 Main St, Flushing, NY 11355", 40.7575, -73.8297, 150
            ),
        ),
    ),
    NodeSpec(
        "bronx",
        "Bronx",
        "Bronx Breaks Cooperative",
        "Where the break got its loop: a cooperative of DJs, salsa bands and soul singers.",
        (
            _a(
                "dj_concourse",
                "DJ Concourse",
                "Person",
                "hip hop, breakbeat",
                "Fordham",
                "Two turntables, a milk crate of breaks and thirty years of block parties.",
            ),
            _a(
                "la_reina_del_bx",
                "La Reina del BX",
                "Person",
                "salsa, boogaloo",
                "Mott Haven",
                "Sings boogaloo the way her father played it at the Hunts Point social club.",
            ),
            _a(
                "pelham_parkway",
                "Pelham Parkway",
                "Group",
                "soul, r&b",
                "Pelham Parkway",
                "A soul revue with a horn section and a lot of matching suits.",
            ),
            _a(
                "kingsbridge_quartet",
                "Kingsbridge Quartet",
                "Group",
                "jazz, chamber",
                "Kingsbridge",
                "Piano, cello, bass and drums; they rehearse in a church basement on 231st.",
            ),
        ),
        (
            VenueSpec(
                "Grand Concourse Hall",
                "2417 Grand Concourse, Bronx, NY 10468",
                40.8610,
                -73.8990,
                400,
            ),
            VenueSpec(
                "Mott Haven Record Room",
                "150 Bruckner Blvd, Bronx, NY 10454",
                40.8065,
                -73.9262,
                120,
            ),
            VenueSpec(
                "Arthur Avenue Cellar", "2344 Arthur Ave, Bronx, NY 10458", 40.8545, -73.8885, 80
            ),
        ),
    ),
    NodeSpec(
        "manhattan",
        "Manhattan",
        "Manhattan Downtown Collective",
        "From Inwood to the Lower East Side: jazz rooms, noise basements and songwriters' nights.",
        (
            _a(
                "ada_lenox",
                "Ada Lenox",
                "Person",
                "jazz, soul",
                "Harlem",
                "A voice for supper clubs; standards on Tuesdays, her own songs on Fridays.",
            ),
            _a(
                "the_bowery_hums",
                "The Bowery Hums",
                "Group",
                "indie rock",
                "Lower East Side",
                "Loud guitars, quiet vocals, and a drummer who works at the bike shop.",
            ),
            _a(
                "inwood_hill",
                "Inwood Hill",
                "Person",
                "singer-songwriter, folk",
                "Inwood",
                "Songs written on the last stop of the A train.",
            ),
            _a(
                "chinatown_static",
                "Chinatown Static",
                "Group",
                "noise, experimental",
                "Chinatown",
                "Contact microphones, broken radios and a mahjong table as percussion.",
            ),
        ),
        (
            VenueSpec(
                "Ludlow Street Underground",
                "165 Ludlow St, New York, NY 10002",
                40.7216,
                -73.9876,
                250,
            ),
            VenueSpec(
                "Lenox Avenue Supper Club",
                "288 Malcolm X Blvd, New York, NY 10027",
                40.8085,
                -73.9446,
                180,
            ),
            VenueSpec(
                "Washington Heights Parlor",
                "4140 Broadway, New York, NY 10033",
                40.8478,
                -73.9387,
                100,
            ),
        ),
    ),
    NodeSpec(
        "staten-island",
        "Staten Island",
        "Staten Island Ferry Records",
        "The forgotten borough, loudly: hardcore, emo, surf and a little country across the harbor.",
        (
            _a(
                "ferry_boy",
                "Ferry Boy",
                "Person",
                "emo, pop punk",
                "St. George",
                "Bedroom emo recorded on the 25-minute ride to Whitehall.",
            ),
            _a(
                "great_kills",
                "Great Kills",
                "Group",
                "hardcore, metal",
                "Great Kills",
                "Fast, short, and done before the second ferry leaves.",
            ),
            _a(
                "tottenville_tides",
                "Tottenville Tides",
                "Group",
                "surf rock, instrumental",
                "Tottenville",
                "Reverb tanks and the southernmost beach in New York State.",
            ),
            _a(
                "rosa_stapleton",
                "Rosa Stapleton",
                "Person",
                "country, americana",
                "Stapleton",
                "Pedal steel and harbor songs; the only honky-tonk on Bay Street.",
            ),
        ),
        (
            VenueSpec(
                "St. George Ferry House",
                "25 Hyatt St, Staten Island, NY 10301",
                40.6425,
                -74.0776,
                220,
            ),
            VenueSpec(
                "Bay Street Garage", "330 Bay St, Staten Island, NY 10301", 40.6338, -74.0752, 150
            ),
            VenueSpec(
                "Richmond Terrace Boathouse",
                "1000 Richmond Terrace, Staten Island, NY 10301",
                40.6436,
                -74.1028,
                120,
            ),
        ),
    ),
)

# Past five nodes, neighbourhood nodes whose artists and venues are generated.
EXTRA_NODES = (
    (
        "harlem",
        "Manhattan",
        "Harlem",
        ("Lenox Ave", "Frederick Douglass Blvd", "W 125th St"),
        40.8116,
        -73.9465,
    ),
    (
        "bushwick",
        "Brooklyn",
        "Bushwick",
        ("Wyckoff Ave", "Knickerbocker Ave", "Flushing Ave"),
        40.6958,
        -73.9171,
    ),
    ("astoria", "Queens", "Astoria", ("Ditmars Blvd", "30th Ave", "Broadway"), 40.7644, -73.9235),
    (
        "mott-haven",
        "Bronx",
        "Mott Haven",
        ("Alexander Ave", "E 138th St", "Willis Ave"),
        40.8091,
        -73.9229,
    ),
)
FIRST = (
    "Nia",
    "Marco",
    "Priya",
    "Dev",
    "Lena",
    "Tomás",
    "Yusuf",
    "Keiko",
    "Omar",
    "Bea",
    "Rafael",
    "June",
)
LAST = (
    "Ortiz",
    "Kim",
    "Okafor",
    "Rivera",
    "Chen",
    "Haddad",
    "Novak",
    "Baptiste",
    "Singh",
    "Moreau",
)
ADJ = (
    "Midnight",
    "Concrete",
    "Golden",
    "Slow",
    "Electric",
    "Paper",
    "Quiet",
    "Neon",
    "Borrowed",
    "Salt",
    "Velvet",
    "Broken",
    "Summer",
    "Last",
    "Early",
    "Blue",
    "Heavy",
    "Open",
    "Second",
    "Hollow",
)
NOUN = (
    "Ferry",
    "Rooftops",
    "Bodega",
    "Signal",
    "Transfer",
    "Stoop",
    "Overpass",
    "Pigeons",
    "Laundromat",
    "Skyline",
    "Corner",
    "Express",
    "Fire Escape",
    "Boardwalk",
    "Bridge",
    "Radio",
    "Block Party",
    "Tunnel",
    "Avenue",
    "Rain",
    "Hydrant",
    "Elevated",
    "Harbor",
    "Marquee",
)
GENRE_POOL = (
    "indie rock",
    "hip hop",
    "jazz",
    "soul",
    "house",
    "punk",
    "folk",
    "salsa",
    "ambient",
    "funk",
)
FANS = (
    ("nia", "Nia R."),
    ("marco", "Marco T."),
    ("priya", "Priya S."),
    ("dev", "Dev K."),
    ("lena", "Lena W."),
    ("tomas", "Tomás A."),
    ("yusuf", "Yusuf H."),
    ("keiko", "Keiko M."),
    ("omar", "Omar B."),
    ("bea", "Bea L."),
)


def _generated_spec(
    key: str, borough: str, hood: str, streets: tuple[str, ...], lat: float, lon: float
) -> NodeSpec:
    """A neighbourhood node with made-up artists and venues, the same every run."""
    rng = random.Random(f"{SEED}:spec:{key}")
    artists = []
    for _ in range(4):
        if rng.random() < 0.5:
            name = f"{rng.choice(FIRST)} {rng.choice(LAST)}"
            kind = "Person"
        else:
            name = f"The {rng.choice(ADJ)} {rng.choice(NOUN)}s".replace("ss", "s")
            kind = "Group"
        handle = "".join(c if c.isalnum() else "_" for c in name.lower().replace("á", "a"))[:30]
        if any(a.handle == handle for a in artists):
            continue
        genres = tuple(rng.sample(GENRE_POOL, 2))
        artists.append(
            ArtistSpec(handle, name, kind, genres, hood, f"Plays {genres[0]} all over {hood}.")
        )
    venues = tuple(
        VenueSpec(
            f"{hood} {kind}",
            f"{rng.randint(10, 400)} {street}, New York, NY",
            round(lat + rng.uniform(-0.004, 0.004), 4),
            round(lon + rng.uniform(-0.004, 0.004), 4),
            rng.choice((80, 150, 300)),
        )
        for street, kind in zip(streets, ("Social Club", "Cellar", "Hall"), strict=True)
    )
    return NodeSpec(
        key,
        borough,
        f"{hood} Music Collective",
        f"Music from {hood}, {borough}.",
        tuple(artists),
        venues,
    )


def node_specs(n: int) -> list[NodeSpec]:
    """The first `n` nodes: the five boroughs, then neighbourhood nodes."""
    return (list(SPECS) + [_generated_spec(*extra) for extra in EXTRA_NODES])[:n]


MAX_NODES = len(SPECS) + len(EXTRA_NODES)


def release_title(rng: random.Random) -> str:
    """A made-up release or track title, drawn from `rng`."""
    pattern = rng.randrange(6)
    adj, noun = rng.choice(ADJ), rng.choice(NOUN)
    return (
        f"{adj} {noun}",
        f"The {noun}",
        f"{noun} at {rng.randint(1, 4)} A.M.",
        f"{adj} {noun}, Pt. {rng.randint(2, 3)}",
        f"Take the {rng.choice('ABCDFGJLMNQRZ1234567')} Train",
        f"{noun} ({adj} Version)",
    )[pattern]


# ---- who does what across the nodes ----------------------------------------


def node_fans(spec: NodeSpec) -> list[tuple[str, str]]:
    """The node's two fans, (handle, name): the same every run."""
    return random.Random(f"{SEED}:{spec.key}:fans").sample(FANS, 2)


def headliner(spec: NodeSpec) -> ArtistSpec:
    """The node's artist whose new release crosses over to the fans on other nodes:
    its first, the one the banner's artist page shows, so that the release on top
    of that page is the one that plays (the demo gives it audio) on every node."""
    return spec.artists[0]


def follow_picks(home: NodeSpec, fan: str, other: NodeSpec) -> list[ArtistSpec]:
    """The two or three artists on `other` that `fan` (of `home`) follows: the
    headliner, so that every fan sees a release cross over, and one or two more."""
    rng = random.Random(f"{SEED}:follows:{home.key}:{fan}:{other.key}")
    top = headliner(other)
    rest = [a for a in other.artists if a != top]
    return [top, *rng.sample(rest, rng.randint(min(1, len(rest)), min(2, len(rest))))]
