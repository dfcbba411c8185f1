"""Compact word lists behind the fast extractor's rules.

Every entry is lower case, and multi-word entries are separated by single spaces. The lists are
deliberately small: they decide types for frequent names and keep noun phrases precise, and
anything they miss falls back to a weaker rule or to `OTHER`. Changing any list changes
extraction output, so bump `FastExtractor.version` with it.
"""


def _words(text: str) -> frozenset[str]:
    """Split whitespace-separated words into a set."""
    return frozenset(text.split())


def _phrases(text: str) -> frozenset[str]:
    """Split `|`-separated phrases into a set, normalising inner whitespace."""
    return frozenset(" ".join(part.split()) for part in text.split("|") if part.strip())


def _with_curly_apostrophes(words: frozenset[str]) -> frozenset[str]:
    """Add the typographic-apostrophe spelling of every word that contains a straight one."""
    return words | frozenset(word.replace("'", "\u2019") for word in words if "'" in word)


# Function words, pronouns, auxiliaries and conversational fillers. A capitalised word from this
# list ends a name unless `TITLE_FUNCTION_WORDS` keeps it ("Behind the Tech"), and a lower-case
# one never belongs to a noun phrase.
STOP_WORDS = _with_curly_apostrophes(_words("""
    a an the this that these those there here such what which who whom whose where when why how
    whatever whoever whichever wherever whenever however
    i me my mine myself we us our ours ourselves you your yours yourself yourselves he him his
    himself she her hers herself it its itself they them their theirs themselves one ones
    i'm i've i'd i'll we're we've we'd we'll you're you've you'd you'll he's he'd he'll she's she'd
    she'll it's it'd it'll they're they've they'd they'll that's there's here's what's who's
    where's how's let's don't doesn't didn't isn't aren't wasn't weren't haven't hasn't hadn't
    won't wouldn't can't cannot couldn't shouldn't mustn't ain't y'all gonna wanna gotta
    be am is are was were been being have has had having do does did doing done
    will would shall should can could may might must ought
    and or but nor so yet if then else than because since unless although though while whereas
    whether either neither both each every all any some many much more most few fewer less least
    several other others another same own no not none nothing something anything everything
    someone anyone everyone somebody anybody everybody nobody somewhere anywhere everywhere
    of in on at to for from by with without within into onto upon about above below over under
    after before between among through throughout during against along across around behind
    beyond toward towards near off out up down via per like unlike versus vs as until till
    also just only even still already again ever never always often sometimes usually really
    very quite rather pretty too enough almost nearly maybe perhaps probably actually basically
    literally certainly definitely absolutely totally completely simply clearly obviously
    indeed anyway anyhow otherwise instead else ago away back forward now today tonight
    tomorrow yesterday soon later early once twice already yes yeah yep no nope okay ok oh ah
    uh um hmm wow hey hi hello bye well right sure thanks thank please sorry alright
    kind sort lot lots bit bunch couple thing things stuff way ways something whole
    guy guys folks gosh god own
"""))

# Frequent verbs, adverbs and adjectives that start sentences or sit next to nouns. Capitalised and
# alone, such a word is not a name, and in lower case it never belongs to a noun phrase.
COMMON_WORDS = _words("""
    say says said saying tell tells told telling ask asks asked asking talk talks talked talking
    think thinks thought thinking know knows knew known knowing mean means meant meaning
    go goes went gone going get gets got gotten getting make makes made making take takes took
    taken taking come comes came coming see sees saw seen seeing look looks looked looking
    want wants wanted wanting need needs needed needing try tries tried trying use uses used
    using give gives gave given giving find finds found finding feel feels felt feeling
    put puts keep keeps kept keeping let lets begin begins began begun start starts started
    starting seem seems seemed help helps helped helping show shows showed shown turn turns
    turned play plays played playing run runs ran running move moves moved moving live lives
    lived believe believes believed happen happens happened bring brings brought write writes
    wrote written sit sits sat stand stands stood hear hears heard love loves loved like likes
    liked remember remembers remembered guess guesses guessed imagine hope hopes hoped wish
    stick stay stays stayed call calls called work works worked working build builds built
    learn learns learned learnt read reads become becomes became leave leaves left spend spent
    welcome welcomed thank thanked agree agreed listen listened check wait waited join
    honestly frankly seriously interestingly unfortunately fortunately hopefully luckily
    essentially generally typically especially particularly specifically exactly entirely
    fully mostly mainly largely partly slightly highly deeply truly finally eventually recently
    currently originally initially ultimately immediately quickly slowly easily hard harder
    super awesome amazing incredible interesting important obvious fantastic wonderful terrible
    crazy cool fun funny nice fine weird strange hard easy simple tough happy glad excited
    lucky proud sad afraid sorry curious best better worse worst bigger smaller faster slower
    easier harder larger longer higher lower earlier later greater stronger younger older
    entire whole various several numerous possible impossible likely unlikely available
    current recent former latter previous following final main major minor key certain sure
    clear free open close closed ready similar particular specific general common usual
    normal special public private personal social single double half part parts
    today yesterday tomorrow everyday anyway meanwhile sometime somehow someday
    red orange yellow green blue purple pink brown black white gray grey golden silver rainy
    first second third last next new old good bad great big small little large long short high
    low able true real different certain full
""")

# Function words that title case capitalises inside names of works and shows ("Behind the Tech").
# Capitalised inside a sentence and followed by another name word, they stay part of the name.
TITLE_FUNCTION_WORDS = _words("""
    the a an of in on at to for from by with without within into onto upon about above below over
    under after before between among through behind beyond across around near off out up down
    and or but nor as all this that these those my your our his her their its what how why when
    where who is are was be not no
""")

# Job titles and roles. A name made only of them ("Chief Technology Officer", "Founder") names a
# position rather than an entity and is skipped.
ROLE_WORDS = _words("""
    officer advocate researcher founder cofounder co-founder president vice ceo cto director
    manager engineer scientist professor chair chairman chairwoman head lead partner fellow
    editor host producer author executive principal senior junior chief general managing
    distinguished associate assistant deputy acting interim technical technology product
    program programme research cloud corporate global regional developer designer architect
    analyst consultant advisor adviser member staff intern student graduate alumnus alumna
    secretary treasurer governor mayor senator minister ambassador commissioner provost dean
    rector chancellor
""")

# Honorifics and titles that precede a person's name. The title is not part of the mention.
PERSON_TITLES = _words("""
    mr mrs ms miss mx dr prof professor sir dame lord lady madam
    president vice senator governor mayor congressman congresswoman representative rep sen gov
    judge justice chancellor minister secretary ambassador chairman chairwoman
    king queen prince princess emperor empress pope saint st bishop archbishop cardinal reverend rev
    father sister brother general gen colonel col captain capt lieutenant lt sergeant sgt
    admiral commander officer detective uncle aunt grandpa grandma
""")

# Given names common in English-language text. Ambiguous ones ("Will", "May", "Hope", "Art") are
# left out, because they start ordinary sentences.
FIRST_NAMES = _words("""
    aaron adam adrian ahmed aisha alan albert alex alexander alexandra alfred alice alicia allen
    alison amanda amber amy ana andrea andrew andy angela anna anne anthony antonio arthur ashley
    barbara barry ben benjamin bernard beth betty bill billy bob bobby bonnie brad bradley brandon
    brenda brian bruce bryan carl carla carlos carol caroline carolyn catherine charles charlie
    charlotte chris christina christine christopher claire claude craig cynthia dan daniel danielle
    daphne david dean deborah debra denise dennis diana diane donald donna doris dorothy doug
    douglas drew dylan ed eddie edward elaine eleanor elizabeth ellen emily emma eric erica erik
    ethan eugene eva evan frank fred frederick gabriel gary george gerald gina gloria gordon greg
    gregory hannah harold harry heather helen henry howard ian isaac isabel jack jacob jacqueline
    james jamie jan jane janet janice jason jean jeff jeffrey jenna jennifer jenny jeremy jerry
    jessica jim jimmy joan joe joel john johnny jon jonathan jordan jose joseph joshua joyce juan
    judith judy julia julian julie justin justine karen kate katherine kathleen kathryn kathy
    katie keith kelly ken kenneth kevin kim kimberly kyle larry laura lauren lawrence leah lee
    leo leonard lewis linda lisa louis louise lucas lucy luis luke lynn margaret maria marie
    marilyn mario marion mark martha martin mary matt matthew megan melissa michael michelle
    mike nancy natalie nathan neil nicholas nick nicole noah norman olivia oliver oren pamela
    patricia patrick paul paula peggy peter philip phillip rachel ralph randy raymond rebecca
    richard rick rita rob robert robin roger ronald rose ross roy russell ruth ryan sam samantha
    samuel sandra sara sarah satya scott sean sharon shirley sidney simon sophia stephanie
    stephen steve steven stuart susan teresa terry thomas tim timothy todd tom tony tyler
    victor victoria vincent virginia walter wayne wendy william zachary
    abdul ali amit anil arjun deepak hiroshi juan kenji li ming mohammed muhammad priya raj rahul
    ravi sanjay satoshi sergei vladimir wei yuki zhang
    hans jurgen klaus pierre jacques francois giovanni giuseppe marco paolo pablo diego miguel
    ingrid lars sven olga elena sofia
""")

# Last words that make a name an organisation: "Acme Corp", "Allen Institute".
ORGANIZATION_SUFFIXES = _words("""
    inc inc. corp corp. corporation company co co. llc ltd ltd. plc gmbh ag sa
    university college school academy institute institution foundation fund trust agency
    bank labs lab laboratory laboratories group association society council committee commission
    department ministry bureau office administration authority board service services
    press records studios studio pictures entertainment media network networks broadcasting
    museum library hospital clinic church party club team league federation union alliance
    partners capital ventures holdings industries enterprises technologies technology systems
    solutions software motors airlines airways army navy corps police court parliament congress
    senate assembly center centre times post journal magazine herald tribune gazette reporter
    news review organization organisation institutes corporation
""")

# First words that make a name an organisation when "of" or "for" follows: "Bank of America".
ORGANIZATION_PREFIXES = _words("""
    university college school academy institute bank department ministry bureau office museum
    church house council society association federation league order organization organisation
    center centre commission committee fund foundation agency board
""")

# Companies, universities and agencies frequent in news and technology text, by exact name.
KNOWN_ORGANIZATIONS = _phrases("""
    microsoft|google|alphabet|apple|amazon|facebook|meta|ibm|intel|amd|nvidia|oracle|adobe|
    salesforce|netflix|tesla|twitter|uber|lyft|airbnb|spotify|samsung|sony|nintendo|yahoo|
    linkedin|github|openai|deepmind|anthropic|xerox|hp|dell|cisco|qualcomm|arm|tsmc|huawei|
    baidu|alibaba|tencent|bytedance|tiktok|paypal|ebay|stripe|dropbox|slack|zoom|reddit|
    wikipedia|mozilla|boeing|airbus|nasa|darpa|spacex|fbi|cia|nsa|un|unesco|who|nato|eu|
    bbc|cnn|nbc|cbs|abc|npr|pbs|hbo|espn|disney|pixar|marvel|warner bros|universal|paramount|
    mit|stanford|harvard|yale|princeton|caltech|berkeley|oxford|cambridge|carnegie mellon|
    cornell|columbia university|duke|ucla|nyu|epfl|eth|bell labs|xerox parc|parc|ycombinator|y combinator|
    sequoia|andreessen horowitz|goldman sachs|morgan stanley|jpmorgan|bloomberg|reuters|
    the new york times|new york times|wall street journal|washington post|the guardian|
    general electric|general motors|ford|toyota|honda|volkswagen|bmw|mercedes|siemens|philips|
    coca-cola|pepsi|mcdonald's|walmart|target|starbucks|nike|adidas|ikea|unilever|pfizer|
    moderna|johnson & johnson|red cross|gates foundation|allen institute|khan academy|
    united nations|european union|world bank|world health organization|supreme court|
    congress|senate|white house|pentagon|kremlin
""")

# Countries, US states, major cities and regions, by exact name.
KNOWN_LOCATIONS = _phrases("""
    afghanistan|albania|algeria|andorra|angola|argentina|armenia|australia|austria|azerbaijan|
    bahamas|bahrain|bangladesh|barbados|belarus|belgium|belize|benin|bhutan|bolivia|bosnia|
    botswana|brazil|brunei|bulgaria|burkina faso|burundi|cambodia|cameroon|canada|chad|chile|
    china|colombia|congo|costa rica|croatia|cuba|cyprus|czech republic|czechia|denmark|
    djibouti|dominican republic|ecuador|egypt|el salvador|england|eritrea|estonia|ethiopia|
    fiji|finland|france|gabon|gambia|georgia|germany|ghana|greece|guatemala|guinea|guyana|
    haiti|honduras|hong kong|hungary|iceland|india|indonesia|iran|iraq|ireland|israel|italy|
    jamaica|japan|jordan|kazakhstan|kenya|korea|south korea|north korea|kosovo|kuwait|
    kyrgyzstan|laos|latvia|lebanon|lesotho|liberia|libya|liechtenstein|lithuania|luxembourg|
    madagascar|malawi|malaysia|maldives|mali|malta|mauritania|mauritius|mexico|moldova|monaco|
    mongolia|montenegro|morocco|mozambique|myanmar|burma|namibia|nepal|netherlands|holland|
    new zealand|nicaragua|niger|nigeria|norway|oman|pakistan|palestine|panama|paraguay|peru|
    philippines|poland|portugal|qatar|romania|russia|rwanda|samoa|saudi arabia|scotland|
    senegal|serbia|sierra leone|singapore|slovakia|slovenia|somalia|south africa|south sudan|
    spain|sri lanka|sudan|suriname|sweden|switzerland|syria|taiwan|tajikistan|tanzania|
    thailand|togo|tonga|trinidad|tunisia|turkey|turkmenistan|uganda|ukraine|
    united arab emirates|uae|united kingdom|uk|u.k.|great britain|britain|united states|
    united states of america|usa|u.s.|u.s.a.|america|uruguay|uzbekistan|vanuatu|venezuela|
    vietnam|wales|yemen|zambia|zimbabwe|soviet union|ussr|yugoslavia|prussia|
    alabama|alaska|arizona|arkansas|california|colorado|connecticut|delaware|florida|hawaii|
    idaho|illinois|indiana|iowa|kansas|kentucky|louisiana|maine|maryland|massachusetts|
    michigan|minnesota|mississippi|missouri|montana|nebraska|nevada|new hampshire|new jersey|
    new mexico|new york|north carolina|north dakota|ohio|oklahoma|oregon|pennsylvania|
    rhode island|south carolina|south dakota|tennessee|texas|utah|vermont|virginia|
    west virginia|washington|wisconsin|wyoming|puerto rico|
    ontario|quebec|british columbia|alberta|bavaria|catalonia|siberia|tibet|
    new york city|los angeles|san francisco|chicago|houston|phoenix|philadelphia|san antonio|
    san diego|dallas|austin|seattle|redmond|bellevue|portland|denver|boston|atlanta|miami|
    detroit|pittsburgh|baltimore|nashville|las vegas|new orleans|minneapolis|cleveland|
    cincinnati|st. louis|kansas city|salt lake city|sacramento|san jose|palo alto|
    mountain view|menlo park|cupertino|oakland|brooklyn|manhattan|queens|the bronx|harlem|
    silicon valley|bay area|hollywood|washington, d.c.|washington d.c.|
    london|paris|berlin|munich|hamburg|frankfurt|vienna|zurich|geneva|amsterdam|brussels|
    madrid|barcelona|lisbon|rome|milan|naples|venice|florence|athens|istanbul|moscow|
    st. petersburg|saint petersburg|kyiv|kiev|warsaw|prague|budapest|stockholm|oslo|
    copenhagen|helsinki|dublin|edinburgh|glasgow|manchester|liverpool|birmingham|oxford|
    cambridge|toronto|montreal|vancouver|ottawa|mexico city|havana|bogota|lima|santiago|
    buenos aires|sao paulo|rio de janeiro|cairo|lagos|nairobi|johannesburg|cape town|
    casablanca|dubai|abu dhabi|tel aviv|jerusalem|tehran|baghdad|riyadh|mumbai|bombay|delhi|
    new delhi|bangalore|bengaluru|hyderabad|chennai|kolkata|karachi|lahore|dhaka|bangkok|
    hanoi|jakarta|manila|kuala lumpur|beijing|shanghai|shenzhen|guangzhou|hangzhou|taipei|
    seoul|tokyo|osaka|kyoto|sydney|melbourne|brisbane|perth|auckland|wellington|
    islamabad|kabul|tashkent|almaty|astana|ulaanbaatar|pyongyang|singapore|colombo|kathmandu|
    yangon|phnom penh|vientiane|canberra|ankara|damascus|beirut|amman|doha|muscat|kuwait city|
    addis ababa|accra|dakar|kinshasa|khartoum|algiers|tunis|tripoli|rabat|harare|lusaka|
    luanda|kampala|kigali|dar es salaam|caracas|quito|la paz|montevideo|asuncion|brasilia|
    panama city|san juan|kingston|reykjavik|tallinn|riga|vilnius|minsk|bucharest|sofia|
    belgrade|zagreb|ljubljana|bratislava|tirana|skopje|valletta|nicosia|d.c.|
    nova scotia|new brunswick|newfoundland|manitoba|saskatchewan|queensland|new south wales|
    victoria|tasmania|santa monica|santa barbara|santa clara|santa fe|las vegas|long beach|
    africa|asia|europe|antarctica|australasia|oceania|north america|south america|
    latin america|central america|middle east|southeast asia|east asia|scandinavia|
    the caribbean|caribbean|mediterranean|atlantic|pacific|arctic|the midwest|midwest|
    new england|the northwest|northwest|pacific northwest|the south|appalachia|
    earth|antarctic|the arctic|sahara|amazon rainforest|himalayas|alps|andes|rockies
""")

# Last words that make a name a place: "Hudson River", "Rocky Mountains".
LOCATION_SUFFIXES = _words("""
    river rivers mountain mountains mount lake lakes island islands isles valley county city
    town village province state region district territory peninsula ocean sea bay gulf strait
    coast beach desert forest canyon falls park square street avenue road boulevard bridge
    airport harbor harbour port highlands plains plateau hills hill creek canal basin
    heights springs range ranges quarter pradesh township borough parish municipality commune prefecture oblast canton
    shire neighborhood neighbourhood highway freeway interstate route tower building hall
    stadium arena palace castle cathedral abbey temple mosque synagogue station terminal
    republic kingdom empire commonwealth
""")

# First words that make a name a place: "Mount Everest", "Lake Tahoe".
LOCATION_PREFIXES = _words("""
    mount mt mt. lake cape fort port gulf isle bay strait sea
""")

# First words that make a name a place when "of" follows: "Republic of Austria", "City of London".
LOCATION_OF_PREFIXES = _words("""
    city town state county province republic kingdom commonwealth duchy principality empire
    isle island islands gulf bay sea lake
""")

# Last words that make a name an event: "World War", "Winter Olympics".
EVENT_SUFFIXES = _words("""
    war wars olympics games conference summit festival revolution championship championships
    cup election elections expo exposition fair awards ceremony tournament marathon series
    bowl crisis pandemic epidemic massacre uprising rebellion riot riots protest protests
    movement campaign strike hackathon symposium convention congress meeting forum
    world's fair olympiad olympiads
""")

# First words that make a name an event when "of" follows: "Battle of Hastings".
EVENT_PREFIXES = _words("""
    battle siege treaty war fall sack invasion
""")

# First words that make any name an event: "Hurricane Irma", "Operation Overlord".
EVENT_FIRST_WORDS = _words("hurricane typhoon cyclone operation")

# Adjectives of nationality, region or people ("Spanish", "Māori"); typed OTHER, never a surname.
DEMONYMS = _words("""
    american british english french german spanish italian portuguese dutch belgian swiss
    austrian irish scottish welsh nordic swedish norwegian danish finnish icelandic polish czech
    slovak hungarian romanian bulgarian greek turkish russian ukrainian serbian croatian
    bosnian albanian chinese japanese korean vietnamese thai indonesian filipino malaysian
    indian pakistani bangladeshi nepali iranian persian iraqi syrian lebanese israeli jewish
    arab arabic egyptian moroccan nigerian kenyan ethiopian african european asian latin
    hispanic mexican canadian brazilian argentine argentinian chilean colombian peruvian
    cuban australian catalan basque celtic roman byzantine ottoman soviet maori māori hawaiian
    texan californian christian muslim islamic hindu buddhist catholic protestant
    americans british europeans
""")

# Month abbreviations that stand alone as dates ("Nov - Feb"); "Jan", "Mar" and "May" are left out
# because they are also names or words.
MONTH_ABBREVIATIONS = _words("feb apr jun jul aug sep sept oct nov dec")

# Products, platforms and programming languages, by exact name.
KNOWN_PRODUCTS = _phrases("""
    windows|office|excel|powerpoint|outlook|teams|azure|bing|xbox|kinect|hololens|surface|
    copilot|visual studio|vs code|skype|cortana|minecraft|halo|onedrive|sharepoint|
    iphone|ipad|ipod|mac|macintosh|macos|ios|siri|android|chrome|chromebook|gmail|youtube|
    instagram|whatsapp|snapchat|tiktok|alexa|kindle|echo|playstation|nintendo switch|
    linux|unix|python|java|javascript|typescript|c++|c#|rust|golang|haskell|fortran|cobol|
    pascal|basic|lisp|perl|php|ruby|swift|kotlin|matlab|sql|html|css|
    chatgpt|gpt|gpt-2|gpt-3|gpt-4|dall-e|bert|alphago|alphafold|watson|tensorflow|pytorch|
    photoshop|illustrator|autocad|unity|unreal engine|fortnite|tetris|pac-man|zelda|
    wordpress|firefox|safari|netscape|mosaic|
    apple ii|commodore 64|atari|altair
""")

# Abbreviations that end company names ("Acme, Inc."); alone they are not mentions.
COMPANY_ABBREVIATIONS = _words("inc corp co ltd llc plc gmbh ag sa")

# Acronyms for fields and technologies rather than named things; they are typed as concepts.
CONCEPT_ACRONYMS = _words("""
    ai agi ml nlp api apis gpu gpus cpu cpus tpu ram ssd vr ar xr iot ui ux sdk os pc pcs
    dna rna crispr hiv aids covid mri ct gps wifi lte ip tcp http url sql
    stem esg kpi roi saas cad cgi lidar covid-19 sars-cov-2
""")

# Acronyms and capitalised words that name roles, degrees, interjections or stage directions
# ("[MUSIC]"); they are never mentions.
IGNORED_ACRONYMS = _words("""
    ceo cto cfo coo cio cmo vp svp evp phd md mba ba bs ms msc ma ok tv pr hr faq eta fyi
    diy lol omg btw usb am pm st ii iii iv end
    music laughter applause crosstalk inaudible silence voiceover
""")

# Nouns that head or modify noun phrases ("machine learning", "climate change"). Words with the
# suffixes in `NOUN_SUFFIXES` need not be listed.
NOUNS = _words("""
    ability access account action activity actor address age agent air algorithm analysis
    animal answer app application architecture area arm army art article artist asset attack
    attention audience author automation bank base battery behavior behaviour belief biology
    blockchain board body book boundary brain brand bridge browser budget bug building
    business camera campaign cancer capacity capital car carbon card care career case cell
    center centre century chain challenge change channel chapter character chemistry child
    children chip circuit city class climate cloud club code coding college color colour
    community company compiler computer computing concept conference consumer content context
    contract control country course court craft creator crime crisis culture currency customer
    cycle damage data database deal death debt decision defense degree demand design designer
    desk developer device diagnosis diet director discovery disease distance doctor document
    dollar domain drive driver drug economy editor education effect election electricity
    email emergency emission employee energy engine engineer engineering entertainment
    environment equipment error event evidence exam example experience experiment expert
    factor factory family farm farmer feature feedback field file film finance fire firm
    fish flight food force forest form format founder framework fuel function fund game
    gaming gap gas gene genome goal government graph grid group growth guitar hardware
    health heart history home hospital host house housing human idea identity image impact
    income industry inequality infrastructure input insurance interface internet interview
    investment investor island issue job journal journalism judge justice key kid knowledge
    lab labor labour land language law layer leader leadership learning lesson letter level
    library license life light limit line link list literature loan logic loop machine
    magazine mail maintenance manager manufacturing map market marketing material math
    mathematics matter meaning measure media medicine meeting member memory message metal
    method metric microphone mind mission mobile mode model money monitor month motor mouse
    movie museum music musician name nature network news newspaper node noise number nurse index
    object ocean office officer oil operation opinion order organ output owner page pain
    paper parent park partner password patient pattern payment peer performance period
    person phone photo physics piano picture piece pipeline plan planet plant platform player
    poetry point policy politics pollution population post poverty power practice president
    pressure price problem process processing processor producer product production profession
    professor profile program programming project protein protocol psychology publication
    publisher quality question race radio rate reality reason record region relationship
    report reporter research researcher resource response result revenue review right risk
    river road robot robotics role room rule safety salary sale satellite scale school
    science scientist score screen search season sector security sensor server service
    session set shape share ship shop show signal site skill society software soil song
    sound source space speaker speech speed sport staff stage standard star startup state
    station status steel step stock storage store story strategy stream street structure
    student studio study style subject success supply support surface survey symbol system
    table talent task tax teacher teaching team technique technology telephone television
    temperature term test testing text theory therapy thesis tool tooth topic tour town
    trade traffic training transport transportation travel treatment tree trial trust truth
    type unit university user value vehicle version video view violence virus vision voice
    vote war water wave weapon weather web website weight welfare window wind wine word
    worker workflow world writer writing year youth spring summer autumn winter pop rock jazz
    champion prize award medal trophy district day night week man men woman women boy girl
    king queen lord god break landing wonder opening iron communion maiden star stars moon sun
    age ages landing road street house home garden island heart soul fire storm dream story
    dynasty era category
""")

# Nouns that are as often verbs ("measure", "change"). They head noun phrases ("climate change") but
# never modify one, because "measure cells" is usually a verb and its object.
VERB_NOUNS = _words("""
    measure change design study control support trust vote search test record report review answer
    process attack share show set run use work form order point post trade travel tour view value
    supply demand deal drive fire fund host judge light limit link list mail map monitor name plan
    plant price rate reason rule sound stage step store stream structure style subject survey type
    wave risk score file feature function picture question matter house experience experiment
    pressure impact issue leave play practice
""")

# Adjectives that modify noun phrases. Words with the suffixes in `ADJECTIVE_SUFFIXES` need not be
# listed.
ADJECTIVES = _words("""
    artificial academic deep neural natural digital global local national federal
    international mobile quantum open-source cloud virtual augmented mixed renewable solar
    nuclear electric electronic mechanical chemical biological medical clinical mental
    physical social economic political cultural environmental financial legal military
    civil human urban rural domestic foreign ancient modern classical contemporary
    industrial commercial corporate scientific technical technological computational
    statistical mathematical linguistic musical visual graphical creative
    autonomous generative predictive intelligent smart distributed parallel
    wireless genetic molecular cellular atomic orbital thermal optical acoustic magnetic
    peer-reviewed full-time part-time long-term short-term real-time high-performance
    large-scale small-scale state-of-the-art self-driving
    north south east west northern southern eastern western central
""")

# Noun endings that mark a word as a likely noun ("-tion", "-ment", "-ology").
NOUN_SUFFIXES = (
    "tion", "sion", "ment", "ness", "ity", "ism", "ist", "ogy", "ics", "ance", "ence", "ship",
    "hood", "ware", "phy", "ysis", "ency", "ancy", "ure", "dom", "tor", "eer", "ician",
)

# Adjective endings that mark a word as a likely modifier ("-al", "-ive", "-ous").
ADJECTIVE_SUFFIXES = ("al", "ic", "ive", "ous", "able", "ible", "ary", "ful", "less", "ian")

# Words with a noun or adjective suffix that are not nouns or modifiers in practice.
SUFFIX_EXCEPTIONS = _words("""
    mention question city pity entity actually especially usually really totally finally
    equally basically literally normally generally typically ideally naturally certainly
    obviously seriously previously various numerous nervous curious obvious previous serious
    anxious enormous famous generous jealous ridiculous dangerous ambitious
    able table capable possible impossible probable terrible horrible incredible visible
    sensible available valuable comfortable reasonable remarkable
    mentioned festival several general special final total equal normal usual actual
    individual original potential essential additional traditional personal initial
    critical typical logical physical
    attention intention
    sure cure pure lure secure mature future
    ensure measure pressure treasure procure endure assure
    whatever moment
    motive active passive massive extensive expensive positive negative relative
    ultimate elective decisive
    hopeful careful helpful useful wonderful beautiful powerful successful thankful grateful
    regardless unless useless endless careless
    christian italian
""")

# Verbs, in the forms that link two mentions ("founded", "joined", "born"). Any word ending in
# "-ed" also counts as a verb unless `NOT_VERBS` lists it. Conversational verbs ("know", "say",
# "see") are left out, because in transcripts they are fillers ("you know") between mentions.
RELATION_VERBS = _words("""
    is are was were be been being has have had
    found founds founded co-founded cofounded create creates created build builds built
    start starts started launch launches launched run runs ran lead leads led head heads
    own owns owned buy buys bought acquire acquires sell sells sold make makes made
    join joins joined leave leaves left work works worked move moves moved live lives lived
    born die dies died marry marries married meet meets met teach teaches taught study studies
    studied write writes wrote written publish publishes published release releases released
    develop develops developed invent invents invented design designs designed produce
    produces produced direct directs directed play plays played sing sings sang sung
    win wins won lose loses lost beat beats defeat defeats defeated hire hires hired
    fund funds funded invest invests invested partner partners partnered compete competes
    serve serves served become becomes became represent represents represented
    locate located base based house houses housed border borders bordered
    include includes included contain contains contained feature features featured
    use uses used support supports supported power powers powered
    replace replaces replaced succeed succeeds succeeded precede precedes preceded
    follow follows followed visit visits visited attend attends attended graduate graduates
    graduated receive receives received award awards awarded name names named call calls
    called known describe describes described
    grow grows grew grown raise raises raised manage manages managed host hosts hosted
    collaborate collaborates collaborated flow flows flowed merge merges merged
    regard regards regarded speak speaks spoke spoken
""")

# Words ending in "-ed" that are not verbs.
NOT_VERBS = _words("""
    red bed bred fed shed sled wed need seed speed feed deed weed breed greed indeed
    hundred kindred sacred naked wicked ragged rugged jagged beloved learned aged
    unincorporated incorporated talented gifted renowned noted skilled detailed advanced
    limited united red-haired
    ted ned fred ed
""")

# Prepositions that join a verb to form a relation label such as "moved_to" or "born_in".
RELATION_PREPOSITIONS = _words("""
    to in at for with from by on into of as about against under over through
""")

# Forms of "be" and "have", reduced to one label each when no other verb links two mentions.
BE_FORMS = _words("is are was were be been being")
HAVE_FORMS = _words("has have had having")

# Auxiliaries and modals skipped while looking for the main verb.
AUXILIARIES = _words("""
    do does did will would shall should can could may might must also then later first
    still not never soon once eventually originally subsequently initially recently
""")
