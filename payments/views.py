from django.contrib.auth.decorators import login_required
from django.shortcuts import render


def home(request):
    return render(request, "home.html")


def pricing(request):
    return render(request, "payments/pricing.html")


@login_required
def orders(request):
    return render(request, "payments/orders.html")
