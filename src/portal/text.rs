//! The portal's words, in English and German; a page is in the user's
//! language (`user set --language`), else the browser's first choice
//! among these, else `[mfa] language`, else English.

/// A phrase of the portal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum T {
    Title,
    SkipToContent,
    SignInHeading,
    SignInIntro,
    Invited,
    UserName,
    Password,
    SignIn,
    SignOut,
    CodeHeading,
    CodeIntro,
    CodeSent,
    Code,
    Continue,
    WrongCredentials,
    TooManyAttempts,
    Unavailable,
    NeedInvitation,
    NotAllowed,
    WrongCode,
    LockedOut,
    Expired,
    Welcome,
    YourMethods,
    NoMethods,
    App,
    HardwareToken,
    Remove,
    AddApp,
    AppHeading,
    AppScan,
    AppSecret,
    AppTypeCode,
    Activate,
    AppActivated,
    AppRemoved,
    PhoneHeading,
    Phone,
    PhoneHint,
    DefaultMethod,
    MethodApp,
    MethodPush,
    MethodCall,
    MethodSms,
    Save,
    Saved,
    BadPhone,
    PinHeading,
    PinIntro,
    NewPin,
    RepeatPin,
    SetPin,
    PinSet,
    PinMismatch,
    BadPin,
    SignInsHeading,
    NoSignIns,
    When,
    Result,
    From,
    NotMe,
    ReportedBlocked,
    LostHeading,
    LostIntro,
    LostButton,
    LostDone,
    Enrolling,
    TestHeading,
    TestIntro,
    TestPush,
    TestCall,
    TestSent,
    TestFailed,
}

/// The phrase in `lang` (a tag such as "de" or "de-ch"; English when the
/// portal does not speak it).
pub fn t(lang: &str, key: T) -> &'static str {
    let de = lang == "de" || lang.starts_with("de-");
    let (en, de_text) = pair(key);
    if de { de_text } else { en }
}

/// Whether the portal speaks `lang`.
pub fn speaks(lang: &str) -> bool {
    lang == "en" || lang.starts_with("en-") || lang == "de" || lang.starts_with("de-")
}

fn pair(key: T) -> (&'static str, &'static str) {
    use T::*;
    match key {
        Title => ("Sign-in verification", "Anmeldebestätigung"),
        SkipToContent => ("Skip to content", "Zum Inhalt springen"),
        SignInHeading => ("Sign in", "Anmelden"),
        SignInIntro => (
            "Sign in with the user name and password you use for the VPN.",
            "Melden Sie sich mit dem Benutzernamen und Kennwort an, die Sie für das VPN verwenden.",
        ),
        Invited => (
            "You were invited to set up your sign-in verification. Sign in to begin.",
            "Sie wurden eingeladen, Ihre Anmeldebestätigung einzurichten. Melden Sie sich an, um zu beginnen.",
        ),
        UserName => ("User name", "Benutzername"),
        Password => ("Password", "Kennwort"),
        SignIn => ("Sign in", "Anmelden"),
        SignOut => ("Sign out", "Abmelden"),
        CodeHeading => ("Verification code", "Bestätigungscode"),
        CodeIntro => (
            "Enter the code your authenticator app or token shows now.",
            "Geben Sie den Code ein, den Ihre Authenticator-App oder Ihr Token jetzt anzeigt.",
        ),
        CodeSent => (
            "We sent a code to your phone by text message. Enter it here.",
            "Wir haben Ihnen einen Code per SMS geschickt. Geben Sie ihn hier ein.",
        ),
        Code => ("Code", "Code"),
        Continue => ("Continue", "Weiter"),
        WrongCredentials => (
            "Wrong user name or password.",
            "Benutzername oder Kennwort falsch.",
        ),
        TooManyAttempts => (
            "Too many failed sign-ins. Wait a few minutes, then try again.",
            "Zu viele fehlgeschlagene Anmeldungen. Warten Sie einige Minuten und versuchen Sie es dann erneut.",
        ),
        Unavailable => (
            "Your password cannot be checked right now. Try again later.",
            "Ihr Kennwort kann gerade nicht geprüft werden. Versuchen Sie es später erneut.",
        ),
        NeedInvitation => (
            "You have no sign-in verification yet. Use the invitation link from your email, or ask your administrator for one.",
            "Sie haben noch keine Anmeldebestätigung. Verwenden Sie den Einladungslink aus Ihrer E-Mail oder bitten Sie Ihren Administrator darum.",
        ),
        NotAllowed => (
            "Your account cannot sign in here. Contact your administrator.",
            "Ihr Konto kann sich hier nicht anmelden. Wenden Sie sich an Ihren Administrator.",
        ),
        WrongCode => (
            "That code is not right. Try the next one.",
            "Der Code ist falsch. Versuchen Sie den nächsten.",
        ),
        LockedOut => (
            "Too many wrong codes: your account is locked for a while.",
            "Zu viele falsche Codes: Ihr Konto ist vorübergehend gesperrt.",
        ),
        Expired => (
            "Your session has expired or the form came from another site. Please try again.",
            "Ihre Sitzung ist abgelaufen oder das Formular kam von einer anderen Website. Bitte versuchen Sie es erneut.",
        ),
        Welcome => ("Your sign-in verification", "Ihre Anmeldebestätigung"),
        YourMethods => ("Your devices", "Ihre Geräte"),
        NoMethods => (
            "No authenticator app or token yet.",
            "Noch keine Authenticator-App und kein Token.",
        ),
        App => ("Authenticator app", "Authenticator-App"),
        HardwareToken => ("Hardware token", "Hardware-Token"),
        Remove => ("Remove", "Entfernen"),
        AddApp => ("Add an authenticator app", "Authenticator-App hinzufügen"),
        AppHeading => (
            "Set up your authenticator app",
            "Authenticator-App einrichten",
        ),
        AppScan => (
            "Scan this QR code with your authenticator app (for example Microsoft or Google Authenticator).",
            "Scannen Sie diesen QR-Code mit Ihrer Authenticator-App (zum Beispiel Microsoft oder Google Authenticator).",
        ),
        AppSecret => (
            "Or type this key into the app:",
            "Oder geben Sie diesen Schlüssel in die App ein:",
        ),
        AppTypeCode => (
            "Then enter the code the app shows, to finish.",
            "Geben Sie dann den Code ein, den die App anzeigt, um abzuschließen.",
        ),
        Activate => ("Activate", "Aktivieren"),
        AppActivated => (
            "Your authenticator app is ready.",
            "Ihre Authenticator-App ist eingerichtet.",
        ),
        AppRemoved => ("The device was removed.", "Das Gerät wurde entfernt."),
        PhoneHeading => ("Phone and method", "Telefon und Verfahren"),
        Phone => ("Mobile phone number", "Mobiltelefonnummer"),
        PhoneHint => (
            "With + and the country code, e.g. +4930123456",
            "Mit + und Landesvorwahl, z. B. +4930123456",
        ),
        DefaultMethod => (
            "How you confirm a sign-in",
            "Wie Sie eine Anmeldung bestätigen",
        ),
        MethodApp => (
            "Code from the authenticator app",
            "Code aus der Authenticator-App",
        ),
        MethodPush => ("Notification in the app", "Benachrichtigung in der App"),
        MethodCall => ("Phone call", "Anruf"),
        MethodSms => ("Text message (SMS)", "Textnachricht (SMS)"),
        Save => ("Save", "Speichern"),
        Saved => ("Saved.", "Gespeichert."),
        BadPhone => (
            "That is not a phone number: write + and the country code.",
            "Das ist keine Telefonnummer: Schreiben Sie + und die Landesvorwahl.",
        ),
        PinHeading => ("PIN for phone calls", "PIN für Anrufe"),
        PinIntro => (
            "When you are called to confirm a sign-in, you type this PIN and #.",
            "Wenn Sie zur Bestätigung angerufen werden, geben Sie diese PIN und # ein.",
        ),
        NewPin => ("New PIN (4 to 8 digits)", "Neue PIN (4 bis 8 Ziffern)"),
        RepeatPin => ("The PIN again", "Die PIN noch einmal"),
        SetPin => ("Set PIN", "PIN festlegen"),
        PinSet => ("Your PIN is set.", "Ihre PIN ist festgelegt."),
        PinMismatch => ("The two PINs differ.", "Die beiden PINs sind verschieden."),
        BadPin => ("A PIN is 4 to 8 digits.", "Eine PIN hat 4 bis 8 Ziffern."),
        SignInsHeading => ("Recent sign-ins", "Letzte Anmeldungen"),
        NoSignIns => ("No sign-ins yet.", "Noch keine Anmeldungen."),
        When => ("When", "Wann"),
        Result => ("Result", "Ergebnis"),
        From => ("From", "Von"),
        NotMe => ("This was not me", "Das war ich nicht"),
        ReportedBlocked => (
            "Thank you. Your account is blocked and your administrator has been told.",
            "Danke. Ihr Konto ist gesperrt und Ihr Administrator wurde benachrichtigt.",
        ),
        LostHeading => ("Lost your phone or token?", "Telefon oder Token verloren?"),
        LostIntro => (
            "Remove all your authenticator apps and tokens now, so nobody can use them. You can set up a new one afterwards.",
            "Entfernen Sie jetzt alle Ihre Authenticator-Apps und Token, damit niemand sie verwenden kann. Danach können Sie ein neues Gerät einrichten.",
        ),
        LostButton => ("Report a lost device", "Verlorenes Gerät melden"),
        LostDone => (
            "Your apps and tokens were removed. Set up a new one below.",
            "Ihre Apps und Token wurden entfernt. Richten Sie unten ein neues Gerät ein.",
        ),
        TestHeading => ("Try it", "Ausprobieren"),
        TestIntro => (
            "Send a test to your phone to see that it arrives. You need not answer it.",
            "Senden Sie einen Test an Ihr Telefon, um zu sehen, dass er ankommt. Sie müssen ihn nicht beantworten.",
        ),
        TestPush => ("Send a test notification", "Testbenachrichtigung senden"),
        TestCall => ("Call me for a test", "Testanruf"),
        TestSent => (
            "The test is on its way to your phone.",
            "Der Test ist auf dem Weg zu Ihrem Telefon.",
        ),
        TestFailed => (
            "The test cannot be sent: no provider for it, or no phone number.",
            "Der Test kann nicht gesendet werden: kein Anbieter dafür oder keine Telefonnummer.",
        ),
        Enrolling => (
            "Set up a way to confirm your sign-ins.",
            "Richten Sie ein Verfahren zur Bestätigung Ihrer Anmeldungen ein.",
        ),
    }
}
