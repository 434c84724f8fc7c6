"""A demo organisation: a course, listed allies, signposting resources, and tokens per role.

Written through the domains' repositories, in one transaction: all of it or none.
"""

from __future__ import annotations

from datetime import timedelta

from allyapi.allies.availability import store_windows
from allyapi.allies.models import Ally, AllyStatus
from allyapi.allies.repository import AllyRepository
from allyapi.core.auth.pseudonym import subject_ref
from allyapi.core.auth.tokens import dev_subject, mint_dev_token
from allyapi.core.db.models import today, utcnow
from allyapi.core.db.session import Database
from allyapi.core.settings import Settings
from allyapi.resources.models import Resource
from allyapi.resources.repository import ResourceRepository
from allyapi.training.models import TrainingCourse, TrainingRecord
from allyapi.training.repository import CourseRepository, RecordRepository

DEMO_ALLIES = [
    (
        "ally-ana",
        "Ana Souza",
        "she/her",
        "Engineering",
        "Lisbon",
        "Europe/Lisbon",
        ["en", "pt"],
        ["stress", "burnout", "workload"],
    ),
    (
        "ally-ben",
        "Ben Okafor",
        "he/him",
        "Finance",
        "London",
        "Europe/London",
        ["en"],
        ["anxiety", "bereavement", "stress"],
    ),
    (
        "ally-chloe",
        "Chloé Martin",
        "she/her",
        "Sales",
        "Paris",
        "Europe/Paris",
        ["fr", "en"],
        ["burnout", "family", "stress"],
    ),
    (
        "ally-dev",
        "Dev Patel",
        "they/them",
        "Operations",
        "Remote",
        "Asia/Kolkata",
        ["en", "hi"],
        ["lgbtq", "isolation", "stress"],
    ),
]

DEMO_RESOURCES = [
    ("Samaritans", "crisis", "GB", "https://www.samaritans.org", "116 123", "24/7"),
    ("988 Suicide & Crisis Lifeline", "crisis", "US", "https://988lifeline.org", "988", "24/7"),
    ("Find a helpline", "crisis", None, "https://findahelpline.com", None, "24/7"),
    (
        "Employee Assistance Programme",
        "eap",
        None,
        "https://eap.example.com",
        "+44 800 000 0000",
        "Mon-Fri 08:00-20:00",
    ),
    ("Talking therapies (NHS)", "professional", "GB", "https://www.nhs.uk/talk", None, None),
    (
        "Supporting a colleague: a short guide",
        "guide",
        None,
        "https://guide.example.com",
        None,
        None,
    ),
]


def demo_tokens(settings: Settings, org: str) -> list[tuple[str, str]]:
    def token(sub: str, roles: list[str], **extra: str) -> str:
        return mint_dev_token(settings, sub=sub, org=org, roles=roles, claims=extra)

    return [
        ("employee", token("demo-employee", ["employee"], country="GB", department="Marketing")),
        ("ally", token("ally-ana", ["employee"], country="PT", department="Engineering")),
        ("coordinator", token("demo-coordinator", ["employee", "coordinator"])),
        ("analyst", token("demo-analyst", ["analyst"])),
        ("integration", token("demo-hris", ["integration"])),
    ]


async def seed_demo(settings: Settings, org: str) -> bool:
    """Idempotent: returns False when the demo organisation already exists."""
    database = Database(settings)
    try:
        async with database.sessionmaker() as session:
            allies = AllyRepository(session)
            if await allies.any_in_org(org):
                return False
            course = TrainingCourse(
                org_id=org,
                name="Mental Health First Aid",
                provider="MHFA England",
                validity_months=36,
                required=True,
            )
            CourseRepository(session).add(course)
            now = utcnow()
            records = RecordRepository(session)
            for sub, name, pronouns, dept, location, tz, languages, topics in DEMO_ALLIES:
                ally = Ally(
                    org_id=org,
                    subject_ref=subject_ref(
                        settings.pseudonym_key_bytes, "ally", dev_subject(settings, org, sub)
                    ),
                    display_name=name,
                    pronouns=pronouns,
                    job_title="Volunteer ally",
                    department=dept,
                    department_key=dept.lower(),
                    location=location,
                    timezone=tz,
                    languages=languages,
                    topics=topics,
                    bio=f"{name.split()[0]} listens without judgement and knows where help is.",
                    contact_channels=[{"kind": "chat"}, {"kind": "video"}],
                    availability=[
                        {"weekday": d, "start": "09:00", "end": "17:00"} for d in range(1, 6)
                    ],
                    status=AllyStatus.active,
                    approved_at=now,
                    search_text=" ".join([name, "volunteer ally", dept, location, *topics]).lower(),
                )
                allies.add(ally)
                await session.flush()
                await store_windows(session, org, ally.id, ally.timezone, ally.availability)
                completed = today() - timedelta(days=90)
                records.add(
                    TrainingRecord(
                        org_id=org,
                        ally_id=ally.id,
                        course_id=course.id,
                        completed_on=completed,
                        expires_on=completed + timedelta(days=36 * 30),
                        verified=True,
                        verified_at=now,
                    )
                )
            resources = ResourceRepository(session)
            for name, category, country, url, phone, hours in DEMO_RESOURCES:
                resources.add(
                    Resource(
                        org_id=org,
                        name=name,
                        category=category,
                        country=country,
                        url=url,
                        phone=phone,
                        hours=hours,
                    )
                )
            await session.commit()
            return True
    finally:
        await database.dispose()
