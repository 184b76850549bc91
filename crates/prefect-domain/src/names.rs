//! Readable run names (`adjective-animal`), as Prefect gives runs created without a name.

const ADJECTIVES: &[&str] = &[
    "agate", "amaranth", "amber", "amethyst", "aquamarine", "arrogant", "beautiful", "benevolent", "blazing",
    "bold", "brave", "bright", "brilliant", "bronze", "calm", "careful", "cerulean", "charming", "cheerful",
    "classic", "clever", "cobalt", "cocky", "colorful", "copper", "cordial", "courageous", "crimson", "cunning",
    "curious", "daft", "dainty", "dandelion", "daring", "dark", "dashing", "dazzling", "delicate", "devious",
    "diligent", "dramatic", "eager", "earthy", "electric", "elegant", "emerald", "energetic", "enigmatic",
    "fabulous", "fancy", "fast", "fearless", "feathered", "festive", "fiery", "flashy", "flawless", "fluffy",
    "fortunate", "friendly", "frisky", "gainful", "gallant", "garnet", "gentle", "giga", "glittering", "golden",
    "gorgeous", "granite", "green", "hallowed", "handsome", "happy", "hardy", "harmonious", "heavenly",
    "hilarious", "honest", "hopeful", "hungry", "icy", "illustrious", "impressive", "incredible", "indigo",
    "industrious", "invisible", "ivory", "jade", "jolly", "jovial", "judicious", "khaki", "kind", "lavender",
    "lilac", "lime", "lively", "loud", "loyal", "lucky", "lumpy", "magenta", "magnificent", "mahogany",
    "marigold", "maroon", "meek", "mellow", "merciful", "mighty", "modest", "mustard", "mysterious", "naughty",
    "neon", "nimble", "noble", "observant", "ochre", "olive", "onyx", "orange", "outrageous", "passionate",
    "peach", "pearl", "perfect", "periwinkle", "persimmon", "placid", "platinum", "polite", "precious",
    "prudent", "purple", "quantum", "quick", "quirky", "radiant", "rainbow", "rare", "realistic", "resilient",
    "resourceful", "rigorous", "robust", "rose", "ruby", "russet", "rustling", "saffron", "sapphire",
    "scarlet", "serious", "shiny", "silver", "sincere", "skilled", "sloppy", "smart", "smooth", "sparkling",
    "spectacular", "spicy", "spiritual", "splendid", "stalwart", "steel", "stoic", "striped", "sturdy",
    "successful", "sunny", "super", "swift", "tacky", "tan", "tangerine", "teal", "tentacled", "terrestrial",
    "thankful", "thundering", "tidy", "tireless", "tomato", "topaz", "tough", "tranquil", "tremendous",
    "trustworthy", "turquoise", "ultramarine", "unbiased", "uncovered", "unique", "unyielding", "utopian",
    "vagabond", "valiant", "vegan", "venomous", "vermilion", "versatile", "vigilant", "violet", "vivacious",
    "warm", "wealthy", "whimsical", "wild", "winged", "wisteria", "witty", "wonderful", "xanthic", "zealous",
    "zippy",
];

const ANIMALS: &[&str] = &[
    "aardvark", "albatross", "alligator", "alpaca", "ant", "anteater", "antelope", "armadillo", "baboon",
    "badger", "barracuda", "bat", "bear", "beaver", "bee", "beetle", "bison", "boar", "bobcat", "buffalo",
    "bullfrog", "butterfly", "buzzard", "camel", "capybara", "caracal", "cardinal", "caribou", "cassowary",
    "cat", "caterpillar", "chameleon", "cheetah", "chicken", "chimpanzee", "chinchilla", "cicada", "civet",
    "clam", "cobra", "cockatoo", "condor", "cormorant", "cougar", "coyote", "crab", "crane", "cricket",
    "crocodile", "crow", "cuckoo", "curassow", "deer", "dingo", "dinosaur", "dodo", "dog", "dolphin", "donkey",
    "dormouse", "dove", "dragon", "dragonfly", "duck", "eagle", "earthworm", "echidna", "eel", "egret",
    "elephant", "elk", "emu", "ermine", "falcon", "ferret", "finch", "firefly", "flamingo", "fox", "frog",
    "gazelle", "gecko", "gerbil", "gibbon", "giraffe", "gnu", "goat", "goldfish", "goose", "gopher", "gorilla",
    "grasshopper", "grebe", "grouse", "gull", "hamster", "hare", "hawk", "hedgehog", "heron", "hippo",
    "hornet", "horse", "hound", "hummingbird", "hyena", "ibex", "ibis", "iguana", "impala", "jackal", "jaguar",
    "jay", "jellyfish", "kangaroo", "kingfisher", "kitten", "kiwi", "koala", "kudu", "ladybug", "lemming",
    "lemur", "leopard", "lion", "lizard", "llama", "lobster", "locust", "loon", "lori", "lynx", "macaw",
    "magpie", "mammoth", "manatee", "mandrill", "mantis", "marmot", "marten", "meerkat", "mink", "mole",
    "mongoose", "monkey", "moose", "mosquito", "moth", "mouse", "mule", "narwhal", "newt", "nightingale",
    "ocelot", "octopus", "okapi", "opossum", "orangutan", "oriole", "oryx", "ostrich", "otter", "owl", "ox",
    "oyster", "panda", "panther", "parakeet", "parrot", "partridge", "peacock", "pelican", "penguin",
    "pheasant", "pig", "pigeon", "platypus", "pony", "porcupine", "porpoise", "puffin", "puma", "python",
    "quail", "quetzal", "rabbit", "raccoon", "ram", "rat", "raven", "reindeer", "rhino", "robin", "rook",
    "salamander", "salmon", "sandpiper", "scorpion", "seahorse", "seal", "shark", "sheep", "shrew", "shrimp",
    "skink", "skunk", "sloth", "slug", "snail", "snake", "sparrow", "spider", "squid", "squirrel", "starfish",
    "starling", "stingray", "stoat", "stork", "swallow", "swan", "tamarin", "tapir", "tarantula", "tarsier",
    "termite", "tiger", "toad", "tortoise", "toucan", "trout", "turkey", "turtle", "viper", "vole", "vulture",
    "wallaby", "walrus", "warthog", "wasp", "weasel", "whale", "wildcat", "wolf", "wolverine", "wombat",
    "woodpecker", "worm", "wren", "yak", "zebra",
];

/// A two-word slug such as `crimson-otter`. `pick(n)` must return an index below `n`.
pub fn slug(mut pick: impl FnMut(usize) -> usize) -> String {
    let adjective = ADJECTIVES[pick(ADJECTIVES.len()) % ADJECTIVES.len()];
    let animal = ANIMALS[pick(ANIMALS.len()) % ANIMALS.len()];
    format!("{adjective}-{animal}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_have_two_words() {
        let name = slug(|n| n / 2);
        assert_eq!(name.split('-').count(), 2);
    }
}
