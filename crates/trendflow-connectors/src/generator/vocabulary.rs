//! Word lists and sentence templates of the tweet generator.
//!
//! Templates are plain strings with `{SLOT}` placeholders, parsed once when a generator is
//! built. Slots:
//!
//! | slot    | filled with                                                          |
//! |---------|----------------------------------------------------------------------|
//! | `{S}`   | a subject at the start of a sentence ("Le taux de chômage")          |
//! | `{s}`   | the same, lower-cased first letter ("le taux de chômage")            |
//! | `{V}`   | a verb expecting a number ("recule de", "s’établit à"), agreeing with |
//! |         | the last subject ("reculent de")                                      |
//! | `{N}`   | a number: "0,3 %", "1,2 point", "4,5 milliards d’euros"              |
//! | `{X}`   | a count with its unit: "12 300 emplois créés"                        |
//! | `{P}`   | a period: "au premier trimestre 2021", "sur un an"                   |
//! | `{SRC}` | a source: "selon l’Insee"                                            |
//! | `{L}`   | a place: "en Île-de-France"                                          |
//! | `{T}`   | a topic with its article: "le logement social"                       |
//! | `{C}`   | a short comment: "Inquiétant."                                       |
//! | `{E}`   | an emoji                                                             |
//! | `{Y}`   | a year                                                               |
//! | `{H}`   | a hashtag (Zipf) inside a sentence, maybe glued: "d’#INSEE", "(#PIB)"|
//! | `{HS}`  | a hashtag starting a sentence: "L’#emploi", "#PIB"                   |
//! | `{M}`   | a mention of an institution or media account: "@InseeFr"             |
//! | `{U}`   | a mention of a random user                                           |
//!
//! Hashtags, mentions and cashtags only ever come from slots (never from literal text), so the
//! generator knows every entity's position. Literal text must not contain `#`, `@`, `$`, `&`,
//! `<` or `>`.

/// Hashtags, most popular first (the generator draws them from a Zipf law over this order).
/// Case and accent variants are distinct hashtags, as they are for a word count.
pub(super) const HASHTAGS: &[&str] = &[
    "Insee", "chômage", "inflation", "économie", "emploi", "PIB", "logement", "INSEE", "démographie", "société",
    "pauvreté", "croissance", "Covid19", "loyers", "insee", "statistiques", "retraites", "salaires", "immobilier",
    "dette", "pouvoirdachat", "inégalités", "France", "confinement", "conjoncture", "Economie", "economie", "Emploi",
    "Chômage", "population", "natalité", "télétravail", "précarité", "déficit", "consommation", "prix", "énergie",
    "jeunes", "retraite", "travail", "entreprises", "industrie", "BCE", "Eurostat", "dataviz", "opendata", "data",
    "santé", "mortalité", "espérancedevie", "fécondité", "recensement", "territoires", "ruralité", "revenus", "SMIC",
    "Smic", "fiscalité", "impôts", "carburants", "électricité", "gaz", "activitépartielle", "chômagepartiel",
    "PoleEmploi", "PôleEmploi", "Dares", "étudiants", "RSA", "APL", "HLM", "logementsocial", "mallogement", "SDF",
    "hôpital", "vaccination", "éducation", "école", "Parcoursup", "formation", "apprentissage", "commerce",
    "exportations", "tourisme", "agriculture", "climat", "environnement", "écologie", "transitionécologique",
    "OpenData", "statistique", "sondage", "Paris", "Marseille", "Lyon", "Lille", "Toulouse", "Bordeaux", "Nantes",
    "Strasbourg", "Montpellier", "Rennes", "Nice", "IDF", "ÎledeFrance", "Bretagne", "Occitanie", "Normandie",
    "Corse", "Guadeloupe", "Martinique", "LaRéunion", "Mayotte", "Guyane", "outremer", "Europe", "UE", "zoneeuro",
    "Allemagne", "Italie", "Espagne", "USA", "Chine", "Macron", "BrunoLeMaire", "gouvernement", "Assemblée", "Sénat",
    "budget", "PLF2021", "relance", "FranceRelance", "PlanDeRelance", "CICE", "PME", "startup", "faillites",
    "défaillances", "investissement", "Bourse", "CAC40", "marchés", "taux", "crédit", "épargne", "patrimoine",
    "héritage", "ISF", "richesse", "milliardaires", "classemoyenne", "giletsjaunes", "GiletsJaunes", "grève",
    "syndicats", "CGT", "CFDT", "réformedesretraites", "assurancechômage", "chômeurs", "demandeursdemploi", "intérim",
    "CDD", "CDI", "ubérisation", "autoentrepreneurs", "salariés", "fonctionnaires", "fonctionpublique",
    "servicepublic", "égalité", "parité", "femmes", "égalitésalariale", "EgalitéFH", "immigration", "migrants",
    "jeunesse", "seniors", "vieillissement", "EHPAD", "dépendance", "handicap", "famille", "mariage", "PACS",
    "naissances", "décès", "surmortalité", "Covid", "COVID19", "covid19", "pandémie", "crise", "récession", "reprise",
    "NoteDeConjoncture", "indicateurs", "IPC", "alimentation", "pauvretéinfantile", "minimasociaux", "redistribution",
    "prélèvements", "TVA", "CSG", "cotisations", "SécuritéSociale", "déficitpublic", "dettepublique", "euro",
    "pétrole", "économétrie", "recherche", "EconTwitter", "ESS", "logementétudiant", "encadrementdesloyers",
    "construction", "BTP", "artisanat", "commerçants", "restaurants", "hôtellerie", "culture", "numérique",
    "innovation", "désertsmédicaux", "villes", "urbanisme", "métropoles", "banlieues", "quartiers", "ségrégation",
    "mobilité", "transports", "SNCF", "ChiffreDuJour", "chiffredujour", "graphique", "infographie", "cartographie",
    "carte", "économiefrançaise", "Économie", "Société", "Démographie", "démographiemédicale", "géographie",
    "sociologie", "politique", "présidentielle2022", "Présidentielle2022", "élections", "régionales",
    "départementales", "abstention", "vote", "laïcité", "sécurité", "justice", "prisons", "délinquance", "violence",
    "féminicides", "logementvacant", "résidencessecondaires", "exoderural", "néoruraux", "périurbain", "Grenoble",
    "Rouen", "Dijon", "Brest", "Metz", "Reims", "Clermont", "Limoges", "Tours", "Angers", "Caen", "Amiens",
    "Perpignan", "Bayonne", "Ajaccio", "Bastia", "Belgique", "Suisse", "Québec", "Maroc", "Afrique", "OCDE", "FMI",
    "ONU", "Brexit", "libreéchange", "mondialisation", "délocalisations", "relocalisation", "souveraineté", "stats",
    "Statistiques", "chiffres", "étude", "publication", "Pauvreté", "Inflation", "Logement", "PIB2021", "Tendances",
];

/// Cashtags (rare).
pub(super) const CASHTAGS: &[&str] = &["BNP", "AIR", "MC", "TTE", "SAN", "OR", "GLE", "ACA", "RNO", "CAC"];

pub(super) const SUBJECTS: &[&str] = &[
    "Le taux de chômage", "Le chômage", "L’inflation", "Le PIB", "La croissance", "Le nombre de demandeurs d’emploi",
    "L’emploi salarié", "Le pouvoir d’achat", "Les prix à la consommation", "Les prix de l’immobilier", "Les loyers",
    "La dette publique", "Le déficit public", "Le taux de pauvreté", "La natalité", "Le nombre de naissances",
    "La fécondité", "L’espérance de vie", "Le nombre de décès", "La consommation des ménages",
    "L’investissement des entreprises", "Le climat des affaires", "La production industrielle",
    "Les créations d’entreprises", "Les défaillances d’entreprises", "Le taux d’épargne", "Le salaire moyen",
    "Le SMIC", "Le prix du gaz", "Le prix de l’électricité", "Les prix des carburants", "Le chômage des jeunes",
    "Le taux d’emploi des seniors", "Le halo autour du chômage", "Le nombre de logements autorisés",
    "Les mises en chantier", "La population française", "Le solde migratoire", "Le taux de marge des entreprises",
    "Le déficit commercial", "Les exportations", "L’indice des prix", "Le revenu disponible brut",
    "Le taux de sous-emploi", "L’emploi intérimaire", "Le nombre d’allocataires du RSA", "Le nombre de mariages",
    "Le nombre de PACS", "Le taux d’activité des femmes", "L’écart de salaire entre femmes et hommes",
    "Le prix des logements anciens", "Le moral des ménages", "Le taux de chômage de longue durée",
    "L’indice de référence des loyers", "Le nombre d’heures travaillées", "La part du télétravail",
];

pub(super) const VERBS: &[&str] = &[
    "recule de", "progresse de", "augmente de", "baisse de", "grimpe de", "chute de", "rebondit de", "se replie de",
    "gagne", "perd", "s’établit à", "atteint", "dépasse", "repasse sous la barre des", "reste stable à", "culmine à",
    "s’envole de", "diminue de", "ralentit à", "accélère à", "plonge de", "remonte à", "se maintient à",
];

/// `VERBS` for a plural subject, in the same order.
pub(super) const VERBS_PLURAL: &[&str] = &[
    "reculent de", "progressent de", "augmentent de", "baissent de", "grimpent de", "chutent de", "rebondissent de",
    "se replient de", "gagnent", "perdent", "s’établissent à", "atteignent", "dépassent", "repassent sous la barre des",
    "restent stables à", "culminent à", "s’envolent de", "diminuent de", "ralentissent à", "accélèrent à",
    "plongent de", "remontent à", "se maintiennent à",
];

pub(super) const PERIODS: &[&str] = &[
    "au premier trimestre 2021", "au 1er trimestre", "au T4 2020", "au quatrième trimestre 2020", "en mars",
    "en février 2021", "sur un an", "en un an", "depuis 2019", "par rapport à 2019", "en 2020", "en glissement annuel",
    "sur l’année 2020", "depuis le début de la crise", "depuis le premier confinement", "en moyenne annuelle",
    "par rapport au trimestre précédent", "entre 2010 et 2020", "en dix ans", "depuis 1975", "ce trimestre",
    "sur les douze derniers mois", "en avril", "cette année", "au troisième trimestre", "depuis vingt ans",
];

pub(super) const SOURCES: &[&str] = &[
    "selon l’Insee", "d’après l’Insee", "selon l’INSEE", "selon les derniers chiffres de l’Insee", "selon la Dares",
    "d’après Pôle emploi", "selon Eurostat", "selon la Banque de France", "selon l’OFCE", "d’après la Drees",
    "selon l’Ined", "selon une étude de France Stratégie", "selon les données publiées ce matin",
    "d’après la note de conjoncture", "selon le ministère du Travail", "d’après l’OCDE", "selon le FMI",
    "selon la BCE", "selon l’Observatoire des inégalités", "d’après la Fondation Abbé Pierre", "selon l’Urssaf",
];

pub(super) const PLACES: &[&str] = &[
    "en France", "en Île-de-France", "dans les Hauts-de-France", "en Occitanie", "en Bretagne",
    "en Provence-Alpes-Côte d’Azur", "en Auvergne-Rhône-Alpes", "en Nouvelle-Aquitaine", "dans le Grand Est",
    "en Normandie", "en Corse", "à Paris", "à Marseille", "à Lyon", "à Lille", "à Toulouse", "à Bordeaux", "à Nantes",
    "à Strasbourg", "en Seine-Saint-Denis", "dans les DOM", "en Guadeloupe", "à La Réunion", "à Mayotte",
    "en Guyane", "dans la zone euro", "en Allemagne", "en Europe", "dans les zones rurales",
    "dans les quartiers prioritaires", "dans les métropoles", "en outre-mer", "en Centre-Val de Loire",
    "en Bourgogne-Franche-Comté", "dans les Pays de la Loire", "à Montpellier", "à Rennes", "à Nice",
];

pub(super) const TOPICS: &[&str] = &[
    "l’emploi", "le chômage", "le logement", "l’inflation", "la pauvreté", "les inégalités", "la démographie",
    "le pouvoir d’achat", "les salaires", "les retraites", "la dette", "le marché du travail", "l’immobilier",
    "la natalité", "l’espérance de vie", "les jeunes", "les seniors", "les familles monoparentales",
    "le logement social", "les loyers", "l’activité partielle", "le télétravail", "la consommation", "l’épargne",
    "les entreprises", "l’industrie", "le commerce extérieur", "la croissance", "le PIB", "les territoires",
    "la ruralité", "la précarité énergétique", "le mal-logement", "les minima sociaux", "la mortalité",
    "l’éducation", "la santé", "les écarts de revenus", "le patrimoine des ménages", "les prix alimentaires",
    "la surmortalité", "les déserts médicaux", "l’égalité femmes-hommes",
];

pub(super) const UNITS: &[&str] = &[
    "emplois détruits", "emplois créés", "naissances", "décès", "demandeurs d’emploi en plus",
    "logements mis en chantier", "entreprises créées", "ménages pauvres", "allocataires du RSA", "chômeurs de plus",
    "salariés en activité partielle", "défaillances d’entreprises", "personnes sans domicile", "mariages",
    "logements vacants", "apprentis", "intérimaires", "habitants de moins",
];

pub(super) const COMMENTS: &[&str] = &[
    "Inquiétant.", "C’est énorme !", "Bonne nouvelle.", "À suivre de près.", "Rien de surprenant…",
    "Qui l’eût cru ?", "Ça fait réfléchir 🤔", "Les chiffres parlent d’eux-mêmes.", "Il serait temps d’agir.",
    "Une tendance de fond.", "Le gouvernement doit réagir !", "On en parle ?", "Du jamais vu depuis 1975.",
    "Effet Covid évidemment.", "Attention aux effets de base.", "Chiffres provisoires, à confirmer.",
    "Et ce n’est que le début…", "La reprise est là ?", "Merci pour ce travail remarquable.", "Lecture indispensable.",
    "Graphique très parlant 👇", "Thread 👇", "Quelle surprise 🙄", "Intéressant !", "Bref.",
    "Vivement les chiffres définitifs.", "Tout est dit.", "Le détail par région est passionnant.",
    "Méthodologie à lire attentivement.", "On attend toujours les mesures.", "✊", "Courage à tous.",
    "Personne n’en parle…", "Voilà.", "Ça mérite un débat sérieux.", "Comparaison européenne à venir.",
    "Et les salaires, eux, ne suivent pas.", "Pas si simple.", "C’est structurel, pas conjoncturel.",
    "Les moyennes cachent de fortes disparités.", "Ouch.", "Chapeau aux équipes !",
];

pub(super) const EMOJIS: &[&str] = &[
    "👉", "📊", "📈", "📉", "😱", "🤔", "👇", "🙄", "💶", "🏠", "🇫🇷", "✊", "⚠️", "✅", "❌", "➡️", "🔥", "💡", "📌", "😡",
    "👏", "🧵", "🗞️", "😅", "🤷‍♂️", "🙏", "💸", "🏭", "👩‍💻", "⬇️",
];

/// First sentence of some tweets.
pub(super) const OPENERS: &[&str] = &[
    "📊", "📈", "📉", "🔴", "⚡", "INFO –", "🔴 INFO –", "[Publication]", "[Thread]", "👉", "⚠️", "Chiffre du jour :",
    "{HS} :", "À la une :", "Note de conjoncture :", "ALERTE –", "🗞️", "💡", "{E} {HS}", "Nouveau :", "Revue de presse :",
];

pub(super) const SENTENCES: &[&str] = &[
    "{S} {V} {N} {P}, {SRC}.",
    "{S} {V} {N} {L} {P}.",
    "{S} {V} {N} {P}, {SRC}.",
    "{S} {V} {N} {P} {SRC} {H}",
    "{HS} : {s} {V} {N} {P} {SRC}.",
    "Nouvelle publication de {M} sur {T} {L}.",
    "{M} publie ses chiffres sur {T} : {s} {V} {N} {P}.",
    "Selon {M}, {s} {V} {N} {P}.",
    "Quelqu’un a les données de {M} sur {T} par commune ?",
    "Les chiffres {H} sont tombés : {s} {V} {N}.",
    "{X} {P} {L}, {SRC}.",
    "Encore une hausse des loyers {L}… {C}",
    "Le saviez-vous ? {S} {V} {N} {P}.",
    "Très bon article sur {T} {L} {H}",
    "Je travaille sur {T} avec les données {H}, c’est passionnant.",
    "Débat ce soir sur {T} : qui a les bons chiffres ?",
    "{S} {V} {N} {P} {E}",
    "Comment expliquer que {s} {V} {N} {L} ?",
    "La carte {H} du jour : {T} {L}.",
    "En {Y}, {s} {V} {N} {L}.",
    "Entre {Y} et 2021, {s} {V} {N}.",
    "Pour rappel, {s} {V} {N} {P} {SRC}.",
    "Dernière note {H} : {s} {V} {N} {P}.",
    "On nous dit que {s} {V} {N}, mais {L} la réalité est tout autre.",
    "Le graphique du jour {E} {S} {V} {N} {P}.",
    "Conférence de presse de {M} à 11h sur {T}.",
    "Étude {H} : {X} {L} {P}.",
    "{S} {L} : {N} {P}.",
    "Rapport annuel sur {T} : les principaux enseignements.",
    "Question à {U} : as-tu les chiffres sur {T} {L} ?",
    "Merci {U} pour ce thread sur {T} {E}",
    "D’après mes calculs sur les données {H}, {s} {V} {N} {L}.",
    "« {S} {V} {N} {P} », rappelle {M}.",
    "Pendant ce temps, {s} {V} {N} {L}…",
    "{S} : {N} {P} (contre {N} un an plus tôt).",
    "Les inégalités {L} : {s} {V} {N} {P}.",
    "Hausse des prix {H} : {s} {V} {N} {P}.",
    "Hors énergie, {s} {V} {N} {P}.",
    "Zoom sur {T} {L} avec {M}.",
    "{S} {V} {N} {P} et {s} {V} {N}.",
    "Sur {T}, le constat est sans appel : {s} {V} {N} {L}.",
    "Webinaire {H} jeudi à 14h : {T} et {T}.",
    "{HS}, {T}, {T} : tout ce qu’il faut retenir de la semaine.",
    "{S} {V} {N} {P}. {C}",
    "Le chiffre qui fâche : {N} {L} {P}.",
    "Je ne comprends pas pourquoi {s} {V} {N} {L} alors que {s} {V} {N}.",
    "Côté territoires, {X} {L} {P}. {C}",
];

/// Comments of quote tweets (kept short: the quoted tweet's link follows).
pub(super) const QUOTE_COMMENTS: &[&str] = &[
    "{C}", "Exactement. {C}", "À lire {E}", "{C} {H}", "Voilà ce que je disais {E}", "Important 👇",
    "Ce graphique {H} {E}", "Merci {M} !", "Intéressant, mais {T} {L} ?", "Et pendant ce temps {L}…",
    "Le vrai sujet c’est {T}.", "Lecture du jour sur {T} {E}", "{HS} {E}", "{U} tu avais raison.",
    "Et {s} {V} {N} {P}…", "À mettre en regard avec {T} {H}",
];

/// Sentences of the rare English tweets.
pub(super) const EN_SENTENCES: &[&str] = &[
    "French unemployment falls to its lowest level since 2008, says {M}.",
    "France: GDP up in Q1 2021, household consumption still weak {H}",
    "Inflation in the euro area picks up again {E}",
    "Great thread on French housing data by {U} {H}",
    "New paper on inequality and {H} in French cities.",
    "Eurozone economy shrinks again as lockdowns bite {E}",
];

pub(super) const FIRST_NAMES: &[&str] = &[
    "Marie", "Jean", "Pierre", "Sophie", "Nicolas", "Camille", "Julien", "Léa", "Thomas", "Chloé", "Antoine", "Manon",
    "Maxime", "Émilie", "Alexandre", "Sarah", "Hugo", "Inès", "Lucas", "Céline", "Mathieu", "Aurélie", "François",
    "Hélène", "Laurent", "Élodie", "Stéphane", "Anaïs", "Benoît", "Clémence", "Jérôme", "Zoé", "Cédric", "Noémie",
    "Loïc", "Margaux", "Raphaël", "Océane", "Théo", "Maëlle", "Yann", "Nadia", "Karim", "Fatou", "Mehdi", "Amina",
    "Olivier", "Isabelle", "Philippe", "Nathalie", "Christophe", "Valérie", "Sébastien", "Agnès", "Gaëlle", "Rémi",
    "Josiane", "Gérard", "Françoise", "Michel", "Bérénice", "Joël", "Aïcha", "Quentin", "Pauline", "Romain",
];

pub(super) const LAST_NAMES: &[&str] = &[
    "Martin", "Bernard", "Dubois", "Thomas", "Robert", "Richard", "Petit", "Durand", "Leroy", "Moreau", "Simon",
    "Laurent", "Lefèvre", "Michel", "Garcia", "David", "Bertrand", "Roux", "Vincent", "Fournier", "Morel", "Girard",
    "André", "Lefebvre", "Mercier", "Dupont", "Lambert", "Bonnet", "François", "Martinez", "Legrand", "Garnier",
    "Faure", "Rousseau", "Blanc", "Guérin", "Muller", "Henry", "Roussel", "Nicolas", "Perrin", "Morin", "Mathieu",
    "Clément", "Gauthier", "Dumont", "Lopez", "Fontaine", "Chevalier", "Robin", "Masson", "Sanchez", "Gérard",
    "Nguyen", "Boyer", "Denis", "Lemaire", "Duval", "Joly", "Gautier", "Roger", "Roche", "Roy", "Noël", "Meyer",
    "Lucas", "Meunier", "Jean", "Pérez", "Marchand", "Dufour", "Blanchard", "Benali", "Diallo", "Traoré", "Le Gall",
    "Kerboriou", "Bréhault", "Cœur", "Lemaître",
];

/// Display names of accounts that do not use a person's name ('/' on purpose: Twitter writes
/// it as "\/").
pub(super) const PSEUDONYMS: &[&str] = &[
    "Le Stat Geek", "Éco en vrac", "Cartes et Chiffres", "Économie / Data", "Démographe du dimanche",
    "La Minute Éco", "Stats et Société", "Le Chômeur Masqué", "Observatoire citoyen", "Data Bretagne",
    "Les Gens d’en Bas", "Prof de SES", "L’Économiste Atterré", "Graphiques et Cie", "Socio / Éco / Géo",
    "Ma Petite Entreprise", "Le Comptable Fou", "Jeunes Précaires", "Collectif Logement 93", "Veille Éco ✊",
];

pub(super) const DESCRIPTIONS: &[&str] = &[
    "Statisticien", "Économiste", "Data scientist", "Prof de SES", "Étudiant en éco", "Journaliste éco",
    "Militant associatif ✊", "Syndicaliste", "Retraité curieux", "Fonctionnaire", "Urbaniste", "Démographe",
    "Chercheuse au CNRS", "Passionné de cartes 🗺️", "Avis perso", "Les RT ne valent pas approbation", "Tweets perso",
    "Lyon ⇄ Paris", "Ancien de l’ENSAE", "Data / éco / société", "Papa de 3", "Maman de 2",
    "Bretonne exilée à Paris", "Open data addict", "Macroéconomie et finances publiques", "Doctorante en sociologie",
    "Consultant indépendant", "Ici pour les graphiques 📊", "Élu local", "Infirmière", "Chef d’entreprise",
    "Agent immobilier", "Chargé d’études", "Géographe", "Sciences Po", "Dauphine", "Toulouse School of Economics",
    "Je tweete sur l’emploi et le logement", "Stats publiques, débat public", "Compte parodique",
    "🇫🇷🇪🇺", "Écologie, solidarité", "Ingénieur / data", "Amoureux des chiffres", "Ex-Insee",
];

pub(super) const LOCATIONS: &[&str] = &[
    "Paris, France", "Paris", "France", "Lyon, France", "Marseille", "Toulouse, France", "Lille", "Bordeaux",
    "Nantes, France", "Strasbourg", "Montpellier, France", "Rennes, France", "Île-de-France", "Bretagne",
    "Grenoble", "Nice", "Montréal, Québec", "Bruxelles, Belgique", "Genève", "Saint-Denis, La Réunion",
    "Pointe-à-Pitre", "Quelque part en France", "Sud-Ouest", "Clermont-Ferrand", "Besançon", "Metz / Nancy",
    "Europe", "Dijon, France", "Limoges", "Seine-Saint-Denis",
];

/// Accounts that get mentioned and retweeted a lot: (screen_name, name, description,
/// location, followers). All are verified.
pub(super) const NOTABLE: &[(&str, &str, &str, &str, u32)] = &[
    ("InseeFr", "Insee", "Compte officiel de l’Institut national de la statistique et des études économiques. Chiffres, études, publications.", "Montrouge, France", 261_000),
    ("Dares_Travail", "Dares", "Direction de l’animation de la recherche, des études et des statistiques (Dares) du ministère du Travail", "Paris, France", 41_200),
    ("banquedefrance", "Banque de France", "Compte officiel de la Banque de France / Official account of the Banque de France", "Paris, France", 98_700),
    ("EU_Eurostat", "EU_Eurostat", "Eurostat is the statistical office of the European Union 🇪🇺", "Luxembourg", 203_000),
    ("ofceparis", "OFCE", "Observatoire français des conjonctures économiques – Sciences Po", "Paris", 22_400),
    ("pole_emploi", "Pôle emploi", "Le compte officiel de Pôle emploi. Actualités, conseils et offres.", "France", 186_000),
    ("France_Strat", "France Stratégie", "Évaluer, anticiper, débattre, proposer. Institution autonome placée auprès du Premier ministre.", "Paris", 38_900),
    ("lemondefr", "Le Monde", "Retrouvez toute l’actualité en continu du journal Le Monde", "Paris", 9_700_000),
    ("LesEchos", "Les Echos", "Premier quotidien économique français", "Paris", 1_100_000),
    ("franceinfo", "franceinfo", "L’info en continu de franceinfo", "France", 2_300_000),
    ("afpfr", "Agence France-Presse", "Le fil d’actualité de l’AFP en français", "Paris, France", 1_100_000),
    ("AlterEco_", "Alternatives Économiques", "Le magazine de l’économie autrement", "Paris", 240_000),
    ("Drees_Sante", "Drees", "Direction de la recherche, des études, de l’évaluation et des statistiques", "Paris", 18_600),
    ("InedFr", "Ined", "Institut national d’études démographiques", "Aubervilliers", 27_300),
    ("Economie_Gouv", "Ministère de l’Économie", "Compte officiel du ministère de l’Économie, des Finances et de la Relance", "Paris", 340_000),
    ("ObsInegalites", "Observatoire des inégalités", "Informer sur les inégalités / Analyser / Agir", "Tours, France", 57_000),
    ("libe", "Libération", "Le compte officiel de Libération", "Paris", 2_900_000),
    ("Le_Figaro", "Le Figaro", "Toute l’actualité en direct", "Paris", 3_400_000),
    ("CEPII_Paris", "CEPII", "Centre d’études prospectives et d’informations internationales", "Paris", 12_800),
    ("IPPinfo", "IPP", "Institut des politiques publiques – évaluations indépendantes", "Paris", 19_200),
    ("BFMTV", "BFMTV", "Première chaîne d’info de France", "France", 3_000_000),
    ("UrssafFr", "Urssaf", "Compte officiel de l’Urssaf", "France", 45_000),
];

/// (name, full_name, place_type, west, south, east, north) of the places some tweets carry.
pub(super) const GEO_PLACES: &[(&str, &str, &str, f64, f64, f64, f64)] = &[
    ("Paris", "Paris, France", "city", 2.224122, 48.815573, 2.469703, 48.902145),
    ("Lyon", "Lyon, France", "city", 4.771813, 45.707363, 4.898377, 45.808281),
    ("Marseille", "Marseille, France", "city", 5.228745, 43.169623, 5.532458, 43.391057),
    ("Toulouse", "Toulouse, France", "city", 1.350391, 43.532708, 1.515303, 43.668708),
    ("Lille", "Lille, France", "city", 2.967811, 50.600869, 3.125818, 50.661042),
    ("Bordeaux", "Bordeaux, France", "city", -0.638661, 44.810776, -0.528475, 44.916341),
    ("Nantes", "Nantes, France", "city", -1.641390, 47.180558, -1.479076, 47.295758),
    ("Strasbourg", "Strasbourg, France", "city", 7.688361, 48.492537, 7.836124, 48.646190),
    ("Montpellier", "Montpellier, France", "city", 3.807239, 43.566745, 3.941353, 43.653312),
    ("Rennes", "Rennes, France", "city", -1.752606, 48.076817, -1.624453, 48.154835),
    ("Île-de-France", "Île-de-France, France", "admin", 1.446169, 48.120110, 3.559007, 49.241320),
    ("France", "France", "country", -5.142222, 41.333740, 9.560016, 51.089062),
];

/// (weight, `source` HTML) of the client apps.
pub(super) const APP_SOURCES: &[(u32, &str)] = &[
    (30, "<a href=\"http://twitter.com/download/android\" rel=\"nofollow\">Twitter for Android</a>"),
    (28, "<a href=\"http://twitter.com/download/iphone\" rel=\"nofollow\">Twitter for iPhone</a>"),
    (25, "<a href=\"https://mobile.twitter.com\" rel=\"nofollow\">Twitter Web App</a>"),
    (5, "<a href=\"https://about.twitter.com/products/tweetdeck\" rel=\"nofollow\">TweetDeck</a>"),
    (3, "<a href=\"http://twitter.com/#!/download/ipad\" rel=\"nofollow\">Twitter for iPad</a>"),
    (3, "<a href=\"https://www.hootsuite.com\" rel=\"nofollow\">Hootsuite Inc.</a>"),
    (2, "<a href=\"https://buffer.com\" rel=\"nofollow\">Buffer</a>"),
    (2, "<a href=\"https://dlvr.it/\" rel=\"nofollow\">dlvr.it</a>"),
    (1, "<a href=\"https://ifttt.com\" rel=\"nofollow\">IFTTT</a>"),
    (1, "<a href=\"https://www.sprinklr.com\" rel=\"nofollow\">Sprinklr</a>"),
];

/// (prefix, suffix) of shared links' expanded URLs; a number goes between them.
pub(super) const LINK_SITES: &[(&str, &str)] = &[
    ("https://www.insee.fr/fr/statistiques/", ""),
    ("https://www.insee.fr/fr/statistiques/", "?sommaire=4318291"),
    ("https://www.insee.fr/fr/statistiques/fichier/", "/ip1845.pdf"),
    ("https://dares.travail-emploi.gouv.fr/publication/", ""),
    ("https://www.lemonde.fr/economie/article/2021/04/15/les-chiffres-du-chomage_", "_3234.html"),
    ("https://www.lesechos.fr/economie-france/conjoncture/", ""),
    ("https://www.alternatives-economiques.fr/", ""),
    ("https://ec.europa.eu/eurostat/web/products-euro-indicators/-/", ""),
    ("https://www.banque-france.fr/statistiques/", ""),
    ("https://www.francetvinfo.fr/economie/emploi/chomage/", ".html"),
    ("https://www.ofce.sciences-po.fr/blog/", ""),
    ("https://bit.ly/3", ""),
    ("https://www.liberation.fr/economie/", "/"),
    ("https://www.inegalites.fr/", ""),
    ("https://youtu.be/", ""),
    ("https://www.strategie.gouv.fr/publications/", ""),
    ("https://drees.solidarites-sante.gouv.fr/publications/", ""),
];

pub(super) const PROFILE_COLORS: &[&str] = &[
    "000000", "1A1B1F", "C0DEED", "022330", "131516", "352726", "642D8B", "FF6699", "0099B9", "89C9FA", "ABB8C2",
    "E81C4F", "3B94D9", "9266CC", "19CF86", "FAB81E", "DD2E44", "4A913C", "91D2FA", "F5F8FA",
];
