"""The power plan page: a study's design simulated through its analysis (study.planning)."""

import math
import time

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render

from study.researcher import dashboard
from study.researcher.forms import PlanForm
from study.researcher.plans import study_plan, study_plan_design
from study.results.planning import PlanError, power_of


@login_required(login_url="researcher-login")
def study_plan_page(request: HttpRequest, slug: str) -> HttpResponse:
    # A plan reads the design and changes nothing, so anyone who sees the study may plan.
    study = get_object_or_404(dashboard.studies_visible_to(user=request.user), slug=slug)
    design = study_plan_design(study=study)
    asked = "baseline" in request.GET
    form = PlanForm(request.GET if asked else None, conditions=design.conditions)
    context = {"study": study, "design": design, "form": form, "plan": None}
    if asked and form.is_valid():
        data = form.cleaned_data
        started = time.perf_counter()
        try:
            plan = study_plan(
                study=study,
                accuracies=data["accuracies"],
                baseline=data["baseline"],
                difference=data["difference"],
                ability_sd=data["ability_sd"],
                item_sd=data["item_sd"],
                inattentive_share=data["inattentive_share"],
                sims=data["sims"],
                max_n=data["max_n"],
                confirm=data["confirm"],
            )
        except PlanError as error:
            context["error"] = str(error)
            return render(request, "researcher/study_plan.html", context, status=400)
        context["plan"] = plan
        context["seconds"] = time.perf_counter() - started
        context["mc_error"] = 0.5 / math.sqrt(data["sims"])
        context["rows"] = [
            {
                "name": contrast.name,
                "difference": contrast.difference if contrast.pairs else None,
                "powers": [power_of(point, contrast) for point in plan.points],
            }
            for contrast in plan.contrasts
        ]
    status = 400 if asked and not form.is_valid() else 200
    return render(request, "researcher/study_plan.html", context, status=status)
