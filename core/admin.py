"""Building blocks every app's admin uses: read-only, no bulk delete, big-table lists, exact search,
read-only inlines of the newest rows, links to change pages.

This module registers nothing; the apps' own ``admin.py`` modules do.
"""

from django.contrib import admin
from django.contrib.admin import ShowFacets
from django.db.models import Q
from django.forms.models import BaseInlineFormSet
from django.urls import NoReverseMatch, reverse
from django.utils.html import format_html

from .paginator import EstimatedCountPaginator


class ReadOnlyAdminMixin:
    """Nobody adds, changes or deletes through the admin, superusers included.

    Django's add, change and delete views check these on GET and on POST alike, so a
    hand-made POST to a change or delete URL is refused with 403 too.
    """

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class NoBulkDeleteMixin:
    """Money rows are never deleted from the admin, one at a time or in bulk."""

    def has_delete_permission(self, request, obj=None):
        return False

    def get_actions(self, request):
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)
        return actions


class BigTableAdminMixin:
    """Lists of tables that grow without bound: no COUNT(*) over the whole table, no facets."""

    show_full_result_count = False
    show_facets = ShowFacets.NEVER
    paginator = EstimatedCountPaginator
    list_per_page = 50


class ExactSearchMixin:
    """Search that uses indexes: a number matches ids, an address matches an email exactly,
    anything else matches the ``exact_text_fields`` exactly.

    Django's default ``icontains`` over joined tables reads every row of a big table. The
    three kinds of term are never OR-ed together: an OR across a join defeats the indexes.
    """

    #: Integer fields of the listed table a numeric term is looked up in (``pk``, ``order_id``, ...).
    exact_int_fields: tuple[str, ...] = ("pk",)
    #: Email fields (stored lowercase) an address is looked up in.
    exact_email_fields: tuple[str, ...] = ()
    #: Foreign keys to users: an address is turned into the user's id first (one indexed
    #: lookup), so the list query needs no join.
    exact_user_fields: tuple[str, ...] = ()
    #: Text fields any other term is looked up in exactly.
    exact_text_fields: tuple[str, ...] = ()

    def get_search_results(self, request, queryset, search_term):
        term = (search_term or "").strip()
        if not term:
            return queryset, False
        if term.isdigit() and len(term) < 19 and self.exact_int_fields:
            fields, value = self.exact_int_fields, int(term)
        elif "@" in term and self.exact_user_fields:
            from django.contrib.auth import get_user_model

            user_ids = list(
                get_user_model().objects.filter(email=term.lower()).values_list("pk", flat=True)
            )
            fields, value = [f"{field}__in" for field in self.exact_user_fields], user_ids
        elif "@" in term and self.exact_email_fields:
            fields, value = self.exact_email_fields, term.lower()
        else:
            fields, value = self.exact_text_fields, term
        condition = Q()
        for field in fields:
            condition |= Q(**{field: value})
        if not condition:
            return queryset.none(), False
        return queryset.filter(condition), False


class RecentInlineFormSet(BaseInlineFormSet):
    """Only the newest ``limit`` related rows, in the model's ordering."""

    limit = 20

    def get_queryset(self):
        if not hasattr(self, "_queryset"):
            self._queryset = super().get_queryset()[: self.limit]
        return self._queryset


class RecentReadOnlyInline(ReadOnlyAdminMixin, admin.TabularInline):
    """A read-only list of a user's newest related rows on a change page."""

    formset = RecentInlineFormSet
    extra = 0
    max_num = 0
    can_delete = False
    show_change_link = True
    limit = 20

    def get_formset(self, request, obj=None, **kwargs):
        formset = super().get_formset(request, obj, **kwargs)
        formset.limit = self.limit
        return formset


def admin_link(model, pk, text=None):
    """A link to the admin change page of ``model`` #``pk`` (or a dash when there is none)."""
    if pk is None:
        return "–"
    opts = model._meta
    try:
        url = reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[pk])
    except NoReverseMatch:
        return text or f"#{pk}"
    return format_html('<a href="{}">{}</a>', url, text if text is not None else f"#{pk}")
