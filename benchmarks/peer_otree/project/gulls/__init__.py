"""The gull study on oTree, page for page as explainstudy shows it: consent, instructions,
12 trials (a photo, an explanation image, species and confidence), a questionnaire, the
end. The images are the ones explainstudy's benchmark study shows, copied into _static by
benchmarks/peer_otree/run.py."""

from otree.api import (
    BaseConstants,
    BaseGroup,
    BasePlayer,
    BaseSubsession,
    Page,
    models,
    widgets,
)


class C(BaseConstants):
    NAME_IN_URL = "gulls"
    PLAYERS_PER_GROUP = None
    NUM_ROUNDS = 12
    SPECIES = [
        "California Gull", "Glaucous winged Gull", "Heermann Gull", "Herring Gull",
        "Ivory Gull", "Ring billed Gull", "Slaty backed Gull", "Western Gull",
    ]  # fmt: skip


class Subsession(BaseSubsession):
    pass


class Group(BaseGroup):
    pass


class Player(BasePlayer):
    species = models.StringField(
        choices=C.SPECIES, widget=widgets.RadioSelect, label="Which species is this bird?"
    )
    confidence = models.IntegerField(
        choices=[1, 2, 3, 4, 5], widget=widgets.RadioSelectHorizontal, label="How sure are you?"
    )
    age_band = models.StringField(
        choices=["18-24", "25-34", "35-44", "45-54", "55-64", "65+", "no answer"],
        widget=widgets.RadioSelect,
    )
    gender = models.StringField(
        choices=["woman", "man", "non-binary", "another", "no answer"], widget=widgets.RadioSelect
    )
    bird_experience = models.StringField(
        choices=["none", "some", "birder", "expert"], widget=widgets.RadioSelect
    )
    trust_ai = models.IntegerField(choices=list(range(1, 8)), widget=widgets.RadioSelect)
    explanation_helpfulness = models.IntegerField(
        choices=list(range(1, 8)), widget=widgets.RadioSelect
    )
    comments = models.LongStringField(blank=True)


def first_round(player: Player) -> bool:
    return player.round_number == 1


def last_round(player: Player) -> bool:
    return player.round_number == C.NUM_ROUNDS


class Consent(Page):
    is_displayed = staticmethod(first_round)


class Instructions(Page):
    is_displayed = staticmethod(first_round)


class Trial(Page):
    form_model = "player"
    form_fields = ["species", "confidence"]

    @staticmethod
    def vars_for_template(player: Player):
        return dict(
            photo=f"gulls/photo-{player.round_number}.jpg",
            explanation=f"gulls/explanation-{player.round_number}.png",
        )


class Questionnaire(Page):
    form_model = "player"
    form_fields = [
        "age_band", "gender", "bird_experience", "trust_ai", "explanation_helpfulness",
        "comments",
    ]  # fmt: skip
    is_displayed = staticmethod(last_round)


class End(Page):
    is_displayed = staticmethod(last_round)


page_sequence = [Consent, Instructions, Trial, Questionnaire, End]
